/* SPDX-License-Identifier: MIT */
/* devmig serve: a device variant over vfio-user; devmig devices: the variants. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "devices.h"
#include "devmig/profile.h"
#include "devmig/server.h"

int devmig_cmd_devices(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	for (size_t i = 0; devmig_variants[i]; i++)
		printf("%-10s %s\n", devmig_variants[i]->name, devmig_variants[i]->summary);
	return 0;
}

struct serve_opts {
	const char *name, *args, *profile;
	struct devmig_server_config cfg;
};

static void serve_usage(FILE *f)
{
	fprintf(f, "usage: devmig serve --device NAME|PATH.so --socket PATH [--args OPTS] "
		   "[--profile FILE] [--allow-other-uids] [--verbose]\n"
		   "  NAME: a variant 'devmig devices' lists; a path with '/': the shared\n"
		   "  object of an out-of-tree variant (its devmig_variant_entry()).\n");
}

/* 0 to run, -1 after --help, else the exit status of a usage error (said). */
static int serve_parse(int argc, char **argv, struct serve_opts *so)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "socket", required_argument, NULL, 's' },
		{ "args", required_argument, NULL, 'a' },
		{ "profile", required_argument, NULL, 'p' },
		{ "allow-other-uids", no_argument, NULL, 'u' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	memset(so, 0, sizeof(*so));
	while ((o = getopt_long(argc, argv, "d:s:a:p:uvh", opts, NULL)) != -1) {
		switch (o) {
		case 'd': so->name = optarg; break;
		case 's': so->cfg.socket_path = optarg; break;
		case 'a': so->args = optarg; break;
		case 'p': so->profile = optarg; break;
		case 'u': so->cfg.allow_other_uids = true; break;
		case 'v': so->cfg.verbose = true; break;
		case 'h': serve_usage(stdout); return -1;
		default: return 2;
		}
	}
	if (!so->name || !so->cfg.socket_path) {
		fprintf(stderr, "devmig serve: --device and --socket are required\n");
		return 2;
	}
	return 0;
}

/* The variant named (in the tree, or a shared object's); NULL (said) with the exit status. */
static const struct devmig_variant *find_variant(const char *name, int *rc)
{
	const struct devmig_variant *v;
	char err[512];

	if (strchr(name, '/')) {
		v = devmig_variant_open(name, err, sizeof(err));
		if (!v) {
			fprintf(stderr, "devmig serve: %s\n", err);
			*rc = 1;
		}
		return v;
	}
	v = devmig_variant_find(name);
	if (!v) {
		fprintf(stderr, "devmig serve: no device variant '%s' (see 'devmig devices'; a "
				"shared object needs a path with '/', e.g. ./lib%s.so)\n", name, name);
		*rc = 2;
	}
	return v;
}

/* The device, with the profile's config space if one was given; NULL (said). */
static struct devmig_device *serve_create(const struct serve_opts *so,
					  const struct devmig_variant *v)
{
	char err[512];
	struct devmig_device *dev = v->create(so->args, err, sizeof(err));

	if (!dev) {
		fprintf(stderr, "devmig serve: %s\n", err);
		return NULL;
	}
	if (so->profile) {
		static char perr[16 * 1024];
		struct devmig_profile *p = devmig_profile_load(so->profile, perr, sizeof(perr));
		int prc = p ? devmig_device_set_profile(dev, p, perr, sizeof(perr)) : -1;
		devmig_profile_free(p);
		if (prc) {
			fprintf(stderr, "devmig serve: profile %s: %s\n", so->profile, perr);
			v->free(dev);
			return NULL;
		}
	}
	return dev;
}

/* Serve until SIGINT or SIGTERM. */
static int serve_run(const struct serve_opts *so, struct devmig_device *dev)
{
	char err[512];

	/* Signals are taken synchronously by this thread; the server runs in its own. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct devmig_server *srv = devmig_server_new(dev, &so->cfg, err, sizeof(err));
	if (!srv || devmig_server_start(srv)) {
		fprintf(stderr, "devmig serve: %s\n", srv ? "cannot start the server thread" : err);
		devmig_server_free(srv);
		return 1;
	}
	if (so->cfg.verbose)
		fprintf(stderr, "devmig serve: %s on %s\n", so->name, so->cfg.socket_path);
	int sig;
	sigwait(&set, &sig);
	devmig_server_free(srv);
	return 0;
}

int devmig_cmd_serve(int argc, char **argv)
{
	struct serve_opts so;
	int rc = serve_parse(argc, argv, &so);

	if (rc)
		return rc < 0 ? 0 : rc;
	const struct devmig_variant *v = find_variant(so.name, &rc);
	if (!v)
		return rc;
	struct devmig_device *dev = serve_create(&so, v);
	if (!dev)
		return 1;
	rc = serve_run(&so, dev);
	v->free(dev);
	return rc;
}
