/* SPDX-License-Identifier: MIT */
/* devmig keygen: a pre-shared key file for TLS between hosts. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cli.h"

#define KEY_BYTES 32u

static void keygen_usage(FILE *f)
{
	fprintf(f,
		"usage: devmig keygen --psk FILE [--identity NAME]\n"
		"\n"
		"Write a new pre-shared key for 'devmig migrate --psk' and 'devmig receive\n"
		"--psk': 32 random bytes as IDENTITY:HEX (psktool's format), mode 0600. FILE\n"
		"must not exist. Copy it to the other host over a channel you trust (scp).\n"
		"\n"
		"  --psk FILE       the key file to create\n"
		"  --identity NAME  the name the key is known by (default devmig)\n");
}

struct keygen_opts {
	const char *path, *id;
};

/* 0 to run, -1 after --help, else the exit status of a usage error (said). */
static int keygen_parse(int argc, char **argv, struct keygen_opts *k)
{
	static const struct option opts[] = {
		{ "psk", required_argument, NULL, 'p' },
		{ "identity", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	k->path = NULL;
	k->id = "devmig";
	while ((o = getopt_long(argc, argv, "p:i:h", opts, NULL)) != -1) {
		switch (o) {
		case 'p': k->path = optarg; break;
		case 'i': k->id = optarg; break;
		case 'h': keygen_usage(stdout); return -1;
		default: return 2;
		}
	}
	if (optind < argc || !k->path) {
		fprintf(stderr, "devmig keygen: --psk FILE is required (devmig keygen --help)\n");
		return 2;
	}
	if (!k->id[0] || strlen(k->id) > 127 || strchr(k->id, ':') || strchr(k->id, '\n')) {
		fprintf(stderr, "devmig keygen: --identity takes 1 to 127 characters, no ':'\n");
		return 2;
	}
	return 0;
}

/* A new key file, ours alone; 0, or 1 (said). */
static int keygen_run(const struct keygen_opts *k)
{
	unsigned char key[KEY_BYTES];
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		fprintf(stderr, "devmig keygen: no random bytes: %s\n", strerror(errno));
		return 1;
	}
	char line[KEY_BYTES * 2 + 160];
	int l = snprintf(line, sizeof(line), "%s:", k->id);
	for (unsigned i = 0; i < KEY_BYTES; i++)
		l += snprintf(line + l, sizeof(line) - (size_t)l, "%02x", key[i]);
	line[l++] = '\n';
	explicit_bzero(key, sizeof(key));
	int fd = open(k->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "devmig keygen: cannot create %s: %s\n", k->path, strerror(errno));
		return 1;
	}
	bool ok = write(fd, line, (size_t)l) == l && !fsync(fd);
	explicit_bzero(line, sizeof(line));
	if (close(fd) || !ok) {
		fprintf(stderr, "devmig keygen: writing %s failed: %s\n", k->path, strerror(errno));
		unlink(k->path);
		return 1;
	}
	return 0;
}

int devmig_cmd_keygen(int argc, char **argv)
{
	struct keygen_opts k;
	int rc = keygen_parse(argc, argv, &k);

	if (rc)
		return rc < 0 ? 0 : rc;
	rc = keygen_run(&k);
	if (!rc)
		fprintf(stderr, "devmig keygen: wrote %s (identity %s); give both hosts the same "
				"file\n", k.path, k.id);
	return rc;
}
