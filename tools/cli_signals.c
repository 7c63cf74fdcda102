/* SPDX-License-Identifier: MIT */
/* Ctrl-C during a migration (cli_signals.h). */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli_signals.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	interrupted = sig;
	/* The next one ends the process. */
	signal(sig, SIG_DFL);
	static const char msg[] = "\ndevmig: interrupted: the migration is abandoned at the "
				  "switchover unless that has begun; the source devices then go "
				  "back to RUNNING (interrupt again to kill at once)\n";
	ssize_t k = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)k;
}

void cli_catch_interrupts(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

bool cli_interrupted(void)
{
	return interrupted != 0;
}

int cli_pause_guest(void *opaque)
{
	(void)opaque;
	return interrupted ? -1 : 0;
}
