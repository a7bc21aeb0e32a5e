/* `inferd profile`: writes a model version's reference_profile.json from its training data. */
#ifndef INFERD_PROFILE_CMD_H
#define INFERD_PROFILE_CMD_H

/* argv[0] is "profile"; returns the process's exit status (0, 1 failure, 2 usage). */
int profile_main(int argc, char **argv);

#endif
