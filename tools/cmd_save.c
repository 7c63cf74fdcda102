/* SPDX-License-Identifier: MIT */
/* devmig save: checkpoint devices into a file; they run on. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_devices.h"
#include "cli_format.h"
#include "cli_progress.h"
#include "cli_report.h"
#include "cli_signals.h"

static void save_usage(FILE *f)
{
	fprintf(f,
		"usage: devmig save (--socket SRC | --vfio SRC) [...] --file PATH [--force] [--json]\n"
		"                   [--verbose]\n"
		"\n"
		"Stop the SRC devices, write their state to PATH, and let\n"
		"them run on. Device state only: no guest memory is saved. The file is written\n"
		"as a new temporary file beside PATH (created exclusively, never through a\n"
		"link), flushed to disk and renamed, so a failed save leaves nothing at PATH.\n"
		"'devmig restore' loads it into devices of the same kinds. On failure the\n"
		"error ends with the state each device was left in.\n"
		"\n"
		"  --socket SRC  a device's vfio-user socket (repeat; restore in the same order)\n"
		"  --vfio SRC    a kernel VFIO device (PCI address, mdev UUID, sysfs path,\n"
		"                /dev/vfio/devices/vfioN; repeat)\n"
		"  --file PATH   the checkpoint to create\n"
		"  --force       replace PATH if it exists (a link at PATH is replaced, not\n"
		"                followed)\n"
		"  --json        print the report as JSON\n"
		"  --verbose     print every state change requested\n");
}

static void set_error(struct devmig_migration_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_error(struct devmig_migration_report *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

/* The directory holding path, so that the rename itself reaches the disk. */
static void fsync_dir_of(const char *path)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	int dfd = open(dirname(buf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
}

/*
 * A new file beside path, ours alone: O_EXCL and O_NOFOLLOW, so nothing
 * planted in the folder (a link, a file) is written through or reused.
 * tmp receives its name.
 */
static int create_temp(const char *path, char *tmp, size_t tmplen)
{
	char dir[PATH_MAX], base[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	snprintf(base, sizeof(base), "%s", path);
	const char *d = dirname(dir), *b = basename(base);

	for (int tries = 0; tries < 100; tries++) {
		uint64_t r;
		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r = (uint64_t)getpid() * 2654435761u + (uint64_t)tries;
		if (snprintf(tmp, tmplen, "%s/.%s.%016llx.tmp", d, b, (unsigned long long)r) >=
		    (int)tmplen) {
			errno = ENAMETOOLONG;
			return -1;
		}
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

/* tmp -> path; without force, never over an existing path (atomically). */
static int publish(const char *tmp, const char *path, bool force)
{
	if (force)
		return rename(tmp, path) ? -errno : 0;
	if (!renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE))
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* A filesystem without RENAME_NOREPLACE: link() refuses an existing name too. */
	if (link(tmp, path))
		return -errno;
	unlink(tmp);
	return 0;
}

/* What the command line asked for. */
struct save_opts {
	char *src[CLI_MAX_DEVICES];
	unsigned nsrc;
	const char *path;
	bool json, verbose, force;
};

/* 0 to run, -1 after --help, else the exit status of a usage error (said). */
static int save_parse(int argc, char **argv, struct save_opts *s)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "vfio", required_argument, NULL, 'V' },
		{ "file", required_argument, NULL, 'f' },
		{ "force", no_argument, NULL, 'F' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	memset(s, 0, sizeof(*s));
	while ((o = getopt_long(argc, argv, "s:V:f:Fjvh", opts, NULL)) != -1) {
		switch (o) {
		case 's':
		case 'V':
			if (!cli_add_device("save", s->src, &s->nsrc, optarg, o == 'V'))
				return 2;
			break;
		case 'f':
			if (s->path) {
				fprintf(stderr, "devmig save: give one --file\n");
				return 2;
			}
			s->path = optarg;
			break;
		case 'F': s->force = true; break;
		case 'j': s->json = true; break;
		case 'v': s->verbose = true; break;
		case 'h': save_usage(stdout); return -1;
		default: return 2;
		}
	}
	if (!cli_no_more_args("save", argc, argv))
		return 2;
	if (!s->nsrc || !s->path) {
		fprintf(stderr, "devmig save: --socket or --vfio, and --file, are required (devmig "
				"save --help)\n");
		return 2;
	}
	if (strlen(s->path) + 32 >= PATH_MAX) {
		fprintf(stderr, "devmig save: the file name is too long: %s\n", s->path);
		return 2;
	}
	return 0;
}

/*
 * Keep the checkpoint written to fd (as tmp): flushed, renamed to the
 * path, the folder flushed. 0, or -errno with the reason in rep->error
 * (tmp removed). *size: the file's bytes.
 */
static int keep_checkpoint(const struct save_opts *s, int fd, const char *tmp,
			   struct devmig_migration_report *rep, off_t *size)
{
	struct stat fst;
	int rc = 0;

	*size = 0;
	if (fsync(fd)) {
		rc = -errno;
		set_error(rep, "flushing %s to disk failed: %s", tmp, strerror(errno));
	} else if (!fstat(fd, &fst)) {
		*size = fst.st_size;
	}
	if (close(fd) && !rc) {
		rc = -errno;
		set_error(rep, "writing %s failed: %s", tmp, strerror(errno));
	}
	if (!rc) {
		rc = publish(tmp, s->path, s->force);
		if (rc == -EEXIST)
			snprintf(rep->error, sizeof(rep->error),
				 "%s appeared while saving; the checkpoint was not kept "
				 "(--force replaces it)", s->path);
		else if (rc)
			set_error(rep, "renaming %s to %s failed: %s", tmp, s->path, strerror(-rc));
		else
			fsync_dir_of(s->path);
	}
	if (rc)
		unlink(tmp);
	return rc;
}

/*
 * Save the devices into a new file beside the path, and keep it when
 * whole. The engine's (or the file's) result; rep says what happened.
 * *started false: nothing began (said), the exit status returned.
 */
static int save_run(const struct save_opts *s, struct devmig_migration_report *rep,
		    bool *started, off_t *size, int *file_rc)
{
	char tmp[PATH_MAX];
	struct stat st;

	*started = false;
	if (!s->force && !lstat(s->path, &st)) {
		fprintf(stderr, "devmig save: %s already exists (--force replaces it)\n", s->path);
		return 1;
	}
	struct devmig_client **sc = cli_connect_all("save", s->src, s->nsrc, CLI_TIMEOUT_DEFAULT);
	if (!sc)
		return 1;
	int fd = create_temp(s->path, tmp, sizeof(tmp));
	if (fd < 0) {
		fprintf(stderr, "devmig save: cannot create a temporary file beside %s: %s\n",
			s->path, strerror(errno));
		cli_close_all(sc, s->nsrc);
		return 1;
	}

	struct cli_progress prog;
	cli_progress_init(&prog, s->verbose, s->src, s->nsrc, NULL, 0);
	struct devmig_engine_config cfg = {
		.event = cli_progress_event, .pause_guest = cli_pause_guest, .opaque = &prog,
	};
	cli_catch_interrupts();
	*started = true;
	int rc = devmig_save(&cfg, sc, s->nsrc, NULL, fd, rep);
	cli_progress_end(&prog);
	cli_close_all(sc, s->nsrc);
	if (rc && cli_interrupted())
		snprintf(rep->error, sizeof(rep->error),
			 "interrupted: no checkpoint was written and the devices run on");
	else if (rc && !rep->error[0])
		set_error(rep, "the save failed: %s", strerror(-rc));

	/* The checkpoint is whole when the engine says so (completed), even if a
	 * device then refused to run on: that file is kept, the error still told. */
	*file_rc = rep->completed ? 0 : rc;
	if (!*file_rc) {
		*file_rc = keep_checkpoint(s, fd, tmp, rep, size);
	} else {
		close(fd);
		unlink(tmp);
	}
	if (*file_rc)
		rep->completed = false;
	rc = *file_rc ? *file_rc : rc;
	if (rc)
		cli_note_states(rep, s->nsrc, 0);
	return rc;
}

static void save_print(const struct save_opts *s, const struct devmig_migration_report *rep,
		       int rc, int file_rc, off_t size)
{
	if (rc)
		cli_print_error("save", rep->error, s->src, s->nsrc, NULL, 0);
	if (s->json) {
		json_object *j = cli_report_json(rep, rc == 0, s->nsrc, 0);
		json_object_object_add(j, "file", json_object_new_string(s->path));
		json_object_object_add(j, "file_bytes", json_object_new_int64(file_rc ? 0 : size));
		cli_print_json(j);
	} else if (!file_rc) {
		char b1[32], b2[32], b3[32];
		printf("saved %u device%s to %s (%s of device state, file %s)%s\n",
		       rep->devices, rep->devices == 1 ? "" : "s", s->path,
		       cli_bytes((double)rep->device_bytes, b1, sizeof(b1)),
		       cli_bytes((double)size, b2, sizeof(b2)),
		       rc ? "" : "; the devices run on");
		printf("  devices stopped for %s\n", cli_duration(rep->downtime_ns, b3, sizeof(b3)));
	}
}

int devmig_cmd_save(int argc, char **argv)
{
	struct save_opts s;
	struct devmig_migration_report rep;
	off_t size = 0;
	bool started;
	int file_rc = 0, rc = save_parse(argc, argv, &s);

	if (rc)
		return rc < 0 ? 0 : rc;
	rc = save_run(&s, &rep, &started, &size, &file_rc);
	if (!started)
		return rc;
	save_print(&s, &rep, rc, file_rc, size);
	return rc ? 1 : 0;
}
