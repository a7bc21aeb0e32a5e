/* traffic/cli: `inferd traffic ...`, the command line over the traffic admin API (it speaks
 * plain HTTP/1.1 to a running server; it never touches the state store itself). */
#ifndef INFERD_TRAFFIC_CLI_H
#define INFERD_TRAFFIC_CLI_H

/* argv[0] is "traffic". Returns the process exit code: 0 on a 2xx, 1 on an error answer,
 * 2 on a usage or connection error. */
int traffic_cli_main(int argc, char **argv);

#endif
