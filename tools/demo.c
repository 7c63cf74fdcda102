/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cli.h"

/* Placeholder until the demo lands: says so and fails. */
int devmig_cmd_demo(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "devmig demo: not built yet\n");
	return 1;
}
