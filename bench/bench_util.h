/* SPDX-License-Identifier: MIT */
/* What every benchmark needs: a clock and the median of repeated runs. */
#ifndef DEVMIG_BENCH_UTIL_H
#define DEVMIG_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v. */
static inline double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* A goal of a figure against its ceiling measured in the same run. */
static inline void goal_at_least(const char *what, double fig, double ceil, const char *ceil_name,
				 const char *unit, double min_pct)
{
	double pct = ceil > 0 ? 100 * fig / ceil : 0;
	printf("GOAL %-52s %8.2f %s = %5.1f%% of %s %.2f %s (goal >= %.0f%%): %s\n", what, fig,
	       unit, pct, ceil_name, ceil, unit, min_pct, pct >= min_pct ? "met" : "NOT met");
}

/* A goal of a figure under a bound. */
static inline void goal_at_most(const char *what, double fig, double bound, const char *unit)
{
	printf("GOAL %-52s %8.2f %s (goal <= %.1f %s): %s\n", what, fig, unit, bound, unit,
	       fig <= bound ? "met" : "NOT met");
}

#endif /* DEVMIG_BENCH_UTIL_H */
