/* SPDX-License-Identifier: MIT */
/* What every benchmark needs: a clock and the median of repeated runs. */
#ifndef DEVMIG_BENCH_UTIL_H
#define DEVMIG_BENCH_UTIL_H

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

#endif /* DEVMIG_BENCH_UTIL_H */
