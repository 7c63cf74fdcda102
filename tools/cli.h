/* SPDX-License-Identifier: MIT */
/* The devmig command-line tool: one function per subcommand, each in its own file. */
#ifndef DEVMIG_TOOLS_CLI_H
#define DEVMIG_TOOLS_CLI_H

#include <stdbool.h>

/* Each returns the process exit status: 0 ok, 1 failed, 2 usage error. */
int devmig_cmd_serve(int argc, char **argv);
int devmig_cmd_devices(int argc, char **argv);
int devmig_cmd_path(int argc, char **argv);
int devmig_cmd_info(int argc, char **argv);
int devmig_cmd_region(int argc, char **argv);
int devmig_cmd_migrate(int argc, char **argv);
int devmig_cmd_receive(int argc, char **argv);
int devmig_cmd_save(int argc, char **argv);
int devmig_cmd_restore(int argc, char **argv);
int devmig_cmd_demo(int argc, char **argv);
int devmig_cmd_compat(int argc, char **argv);
int devmig_cmd_profile(int argc, char **argv);
int devmig_cmd_resume(int argc, char **argv);
int devmig_cmd_reset(int argc, char **argv);
int devmig_cmd_keygen(int argc, char **argv);
int devmig_cmd_check(int argc, char **argv);

#endif
