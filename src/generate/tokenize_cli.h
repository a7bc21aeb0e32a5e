/* `inferd tokenize`: the C tokenizer from the command line (the reference test drives it). */
#ifndef INFERD_GENERATE_TOKENIZE_CLI_H
#define INFERD_GENERATE_TOKENIZE_CLI_H

/* argv[0] is "tokenize". Returns the process's exit status. */
int tokenize_cli_main(int argc, char **argv);

#endif
