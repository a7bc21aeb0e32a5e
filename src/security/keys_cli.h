/* security/keys_cli: `inferd keys create|list|revoke|rotate`, managing an --api-keys file. */
#ifndef INFERD_KEYS_CLI_H
#define INFERD_KEYS_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* argv[0] is "keys". Returns the process exit code (0, 1 on failure, 2 on bad usage). */
int keys_cli_main(int argc, char **argv);

/* "30d", "12h", "90m", "45s", "2w" or plain seconds -> seconds; false when malformed or <= 0. */
bool keys_parse_duration(const char *s, int64_t *out);

#endif
