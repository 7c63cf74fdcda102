/* SPDX-License-Identifier: MIT */
/*
 * mydev as its own program: the device and the vfio-user server in one
 * process, the way a VMM embeds the client. Serves until SIGINT/SIGTERM.
 *   mydev-server --socket PATH
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "devmig/server.h"
#include "devmig/variant.h"

int main(int argc, char **argv)
{
	const struct devmig_variant *v = devmig_variant_entry(); /* linked in, not loaded */
	struct devmig_server_config cfg = { 0 };
	char err[256];

	if (argc != 3 || strcmp(argv[1], "--socket")) {
		fprintf(stderr, "usage: %s --socket PATH\n", argv[0]);
		return 2;
	}
	cfg.socket_path = argv[2];
	struct devmig_device *dev = v->create(NULL, err, sizeof(err));
	if (!dev) {
		fprintf(stderr, "mydev-server: %s\n", err);
		return 1;
	}
	/* Signals are taken by this thread; the server runs in its own. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct devmig_server *srv = devmig_server_new(dev, &cfg, err, sizeof(err));
	if (!srv || devmig_server_start(srv)) {
		fprintf(stderr, "mydev-server: %s\n", srv ? "cannot start the server" : err);
		devmig_server_free(srv);
		v->free(dev);
		return 1;
	}
	int sig;
	sigwait(&set, &sig);
	devmig_server_free(srv);
	v->free(dev);
	return 0;
}
