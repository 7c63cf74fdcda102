/* SPDX-License-Identifier: MIT */
/* devmig: the command-line tool. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: devmig <command> [options]\n"
		"\n"
		"commands:\n"
		"  serve --device NAME|PATH.so --socket PATH [--args OPTS] [--profile FILE]\n"
		"        [--allow-other-uids] [--verbose]\n"
		"                              serve a device variant over vfio-user until SIGINT/SIGTERM\n"
		"                              (a path with '/': an out-of-tree variant's shared object;\n"
		"                              --profile: config space synthesized from a profile)\n"
		"  devices                     list the device variants\n"
		"  info (--socket PATH | --vfio DEVICE) [--json]\n"
		"                              a device's identity, migration capabilities and state\n"
		"  region read|write ...       read or write a device region (devmig region --help)\n"
		"  migrate ...                 live-migrate devices (devmig migrate --help)\n"
		"  receive ...                 the destination of a two-host migration\n"
		"  save ... / restore ...      checkpoint devices to a file and back\n"
		"  resume --socket PATH ...    devices a failed migration left stopped: back to RUNNING\n"
		"  reset --socket PATH ...     reset devices (a destination left mid-load); state is lost\n"
		"  keygen --psk FILE           a pre-shared key for TLS between hosts\n"
		"  demo                        migrate a running memblk device under load and verify it\n"
		"  compat ...                  can a target take a source's state? one pair or a fleet\n"
		"  profile --dump (--socket PATH | --vfio DEVICE) [--output FILE] | --check FILE\n"
		"                              a device's config space as a profile; validate a profile\n"
		"  check --socket A [--socket B] [--json]\n"
		"                              test a device's migration driver against the protocol\n"
		"                              (B: a second fresh instance for the round trips)\n"
		"  path FROM TO [--caps LIST]  print the arcs the state machine takes from FROM to TO\n"
		"                              (LIST: comma-separated of stop_copy,p2p,pre_copy; default all)\n"
		"  help                        this text\n"
		"\n"
		"\n"
		"A device is a vfio-user socket (--socket PATH) or a kernel VFIO device (--vfio\n"
		"DEVICE: a PCI address, an mdev UUID, a sysfs path or /dev/vfio/devices/vfioN),\n"
		"wherever a command takes one; --to-vfio for migrate's local destinations,\n"
		"vfio:DEVICE for compat's --source and --target.\n"
		"'devmig COMMAND --help' describes each command.\n");
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "serve", devmig_cmd_serve },
	{ "info", devmig_cmd_info },
	{ "region", devmig_cmd_region },
	{ "migrate", devmig_cmd_migrate },
	{ "receive", devmig_cmd_receive },
	{ "save", devmig_cmd_save },
	{ "restore", devmig_cmd_restore },
	{ "demo", devmig_cmd_demo },
	{ "compat", devmig_cmd_compat },
	{ "profile", devmig_cmd_profile },
	{ "check", devmig_cmd_check },
	{ "devices", devmig_cmd_devices },
	{ "path", devmig_cmd_path },
	{ "resume", devmig_cmd_resume },
	{ "reset", devmig_cmd_reset },
	{ "keygen", devmig_cmd_keygen },
};

int main(int argc, char **argv)
{
	/* A peer that goes away is an error on its connection, never our death:
	 * every command (serve, demo, migrate, ...) talks to sockets. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "devmig: unknown command '%s' (try 'devmig --help')\n", argv[1]);
	return 2;
}
