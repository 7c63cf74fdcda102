/* SPDX-License-Identifier: MIT */
/*
 * memblk: the non-converging scenario, shared by `devmig demo --scenario
 * non-converging`, bench_engine and the tests that want its shape.
 *
 * A guest rewrites a working set of memblk faster than the link copies it:
 * ~3000 random WRITEs/s (1..8 blocks) dirty the 768 64-KiB chunks of a
 * 48 MiB working set many times over in the ~0.6 s a round takes to send
 * them at 64 MiB/s, so every round leaves about the whole working set dirty
 * and a stop would need ~0.6 s, twice the 300 ms budget. The link's rate
 * is capped by the engine (link_rate), so the numbers hold on any machine
 * that can do a few thousand small I/Os a second.
 */
#ifndef DEVMIG_MEMBLK_SCENARIO_H
#define DEVMIG_MEMBLK_SCENARIO_H

#define MB_NC_SIZE (64ull << 20)          /* device storage */
#define MB_NC_WORKING_SET (48ull << 20)   /* where its writes go */
#define MB_NC_GUEST_MEM (16ull << 20)     /* guest memory, migrated too */
#define MB_NC_LINK_RATE (64ull << 20)     /* bytes/s the link carries */
#define MB_NC_OPS 4000u                   /* I/Os a second at most... */
#define MB_NC_WRITE_PCT 75u               /* ...of which WRITEs */
#define MB_NC_BUDGET_NS (300ull * 1000 * 1000)

#endif /* DEVMIG_MEMBLK_SCENARIO_H */
