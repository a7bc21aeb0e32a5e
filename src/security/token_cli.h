/* security/token_cli: `inferd token verify`, which checks a JWT the way the server does and
 * prints the principal it maps to (for operators wiring an identity provider, and for tests). */
#ifndef INFERD_TOKEN_CLI_H
#define INFERD_TOKEN_CLI_H

/* argv[0] is "token". Returns the process exit status: 0 verified, 1 refused (the reason on
 * stderr) or the keys did not load, 2 usage. */
int token_cli_main(int argc, char **argv);

#endif
