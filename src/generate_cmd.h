/* `inferd generate`: runs generations on a model repository's generative model in-process,
 * through the same pipeline the servers use (tests, benchmarks, trying a model out). */
#ifndef INFERD_GENERATE_CMD_H
#define INFERD_GENERATE_CMD_H

/* argv[0] is "generate"; returns the process's exit status (0, 1 failure, 2 usage). */
int generate_cli_main(int argc, char **argv);

#endif
