/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dispatch benchmark: what one call to a small op costs through each
 * way a multi-process driver can find it. Shared by the primary
 * (mpops-bench-dispatch) and the secondary, a separate executable
 * (mpops-bench-dispatch-secondary) that registers its implementations in
 * another order.
 *
 * The op is notify_queue(), as in a virtio driver's kick path; every
 * implementation only counts the call (see DISPATCH_IMPL).
 */
#ifndef MPOPS_BENCH_DISPATCH_H
#define MPOPS_BENCH_DISPATCH_H

#include <stdint.h>
#include <stdio.h>

#include <mpops/mpops.h>

/* ==== the op and its implementations ==================================== */

/* Process-local device state the op touches: one counter per queue. */
#define DISPATCH_QUEUES 8
struct dispatch_hw_local {
	uint64_t kicks[DISPATCH_QUEUES];	/* calls of the "user" implementation */
	uint64_t wrong;				/* calls of any other implementation */
};

typedef int (*dispatch_notify_fn)(struct dispatch_hw_local *hw, uint16_t queue);

#define DISPATCH_OPS(OP)                                                     \
	OP(int, notify_queue, (struct dispatch_hw_local *, uint16_t /* queue */))
MPOPS_OPS_CLASS_DECLARE(dispatch, DISPATCH_OPS)

/*
 * One implementation per use, so each program compiles its own copy in its
 * own translation unit (the benchmark's call sites cannot inline it).
 * "user" counts in kicks[], the others in wrong, so a run can check that
 * every call reached the implementation it meant to.
 */
#define DISPATCH_IMPL(nm, counter)                                           \
	__attribute__((noinline)) int dispatch_##nm##_notify_queue(          \
		struct dispatch_hw_local *hw, uint16_t queue);               \
	__attribute__((noinline)) int dispatch_##nm##_notify_queue(          \
		struct dispatch_hw_local *hw, uint16_t queue)                \
	{                                                                    \
		(void)queue;                                                 \
		hw->counter++;                                               \
		return 0;                                                    \
	}                                                                    \
	const struct dispatch_ops dispatch_##nm##_ops = {                    \
		.notify_queue = dispatch_##nm##_notify_queue,                \
	};                                                                   \
	MPOPS_OPS_IMPL(dispatch, nm, &dispatch_##nm##_ops)

/* The implementation every case calls; exported for the dlsym case. */
#define DISPATCH_TARGET_IMPL "user"
#define DISPATCH_TARGET_SYMBOL "dispatch_user_notify_queue"
int dispatch_user_notify_queue(struct dispatch_hw_local *hw, uint16_t queue);
extern const struct dispatch_ops dispatch_user_ops;
extern const struct mpops_ops_impl mpops_impl_dispatch_user;

/*
 * mpops_port: the port layer's fast path (mpops_rx_burst) on a port of the
 * bench's own port driver, whose rx burst counts like "user" does: one
 * increment of kicks[queue], through its per-process queue context.
 */
#define DISPATCH_PORT "bench"
struct dispatch_burst_queue {
	struct dispatch_hw_local *hw;
	uint16_t queue;
};
int dispatch_port_rx(void *queue, struct mpops_pkt **pkts, uint16_t n);
/* Primary: create, publish and start the bench port. @return 0 or -errno. */
int dispatch_port_create(struct mpops_region *r);

/* ==== shared memory ===================================================== */

#define DISPATCH_ROOT "dispatch.dev"

/*
 * The device as the primary publishes it. raw_notify is the unsafe
 * baseline the issue asks for: the primary's own address of
 * dispatch_user_notify_queue, which means nothing in another executable.
 * mpops code never stores one; only this benchmark does, to measure it.
 */
struct dispatch_dev_shared {
	mpops_ops_id_t ops_id;	/* ID of dispatch/user */
	uint16_t port_id;	/* index into a DPDK-style per-process port array */
	uint16_t queue;
	uint16_t pad;
	uint64_t raw_notify;	/* the primary's function pointer (the bug) */
};
_Static_assert(sizeof(struct dispatch_dev_shared) == 16, "dispatch_dev_shared layout");

/* ==== the cases ========================================================= */

/* Each base case has a warm and a cold (_cold) variant. */
enum dispatch_case {
	DISPATCH_DIRECT,
	DISPATCH_RAW_FNPTR_LOCAL,
	DISPATCH_RAW_FNPTR_SHARED,
	DISPATCH_MPOPS_ID,
	DISPATCH_MPOPS_CACHED,
	DISPATCH_RAW_BURST_LOCAL,
	DISPATCH_MPOPS_PORT,
	DISPATCH_DPDK_PORT_ARRAY,
	DISPATCH_BY_NAME,
	DISPATCH_DLSYM,
	DISPATCH_BASE_CASES,
};
#define DISPATCH_CASES (2 * DISPATCH_BASE_CASES)	/* warm, then cold */
#define DISPATCH_COLD(c) ((c) + DISPATCH_BASE_CASES)
#define DISPATCH_IS_COLD(c) ((c) >= DISPATCH_BASE_CASES)

#define DISPATCH_RAW_SHARED_ERROR \
	"a function pointer stored by the primary is not valid here"

/* "mpops_id", "mpops_id_cold", ... */
const char *dispatch_case_name(unsigned c);
/* -1 if @name is not a case. */
int dispatch_case_find(const char *name);

/* What the cold variants flush, printed and written to the JSON. */
#define DISPATCH_COLD_METHOD                                                 \
	"clflush of every cache line the case's lookup reads, then mfence, "   \
	"before each call; data only (code, the arguments and the counter "    \
	"stay cached); each call timed alone between lfence-fenced rdtsc "    \
	"reads; per run the mean of the middle 80% of the calls, minus the "   \
	"timer's own overhead measured the same way in the same run"

/* ==== measuring (dispatch_cases.c) ====================================== */

struct dispatch_cfg {
	uint64_t calls;		/* warm calls per case per run */
	unsigned cold_calls;	/* cold calls per case per run */
	uint64_t warmup_calls;	/* untimed calls per case before run 0 */
	unsigned cases;		/* bitmask of base cases to measure */
	int cold;		/* measure the _cold variants */
	int primary;		/* 1 in the primary: raw_fnptr_shared is callable */
};

/*
 * Per-run figures of one process: cycles and ns per call for every case
 * (NaN where not measured), and the timer overhead of the cold calls.
 */
struct dispatch_sample {
	double cycles[DISPATCH_CASES];
	double ns[DISPATCH_CASES];	/* NaN for cold: derived later from the TSC rate */
	double timer_cycles;
};

/*
 * Build this process's view of the device (port struct, port array, name
 * table address for cold flushes) from the shared struct.
 * @return 0 or -errno (logged on stderr).
 */
int dispatch_setup(struct mpops_region *r, const struct dispatch_dev_shared *sh,
		   const struct dispatch_cfg *cfg);
/* Untimed calls of every selected case. @return 0 or -EIO (wrong target). */
int dispatch_warmup(void);
/*
 * One run: every selected case once, in an order drawn from @run, so each
 * case takes every position across runs.
 * @return 0, or -EIO if a case reached the wrong implementation.
 */
int dispatch_run(unsigned run, struct dispatch_sample *out);

/* The TSC rate, calibrated against CLOCK_MONOTONIC since the first call. */
double dispatch_tsc_ghz(void);
/* One line per base case: what it does per call and what _cold flushes. */
void dispatch_describe(FILE *f);

/* ==== results (dispatch_report.c) ======================================= */

struct dispatch_case_result {
	int measured;
	const char *error;	/* not measured: why (NULL = not selected) */
	double ns_median, ns_p10, ns_p90;
	double cycles_median;
	double spread_pct;	/* (p90 - p10) / median of cycles, over runs */
	double ratio;		/* to raw_fnptr_local(_cold), per run, median */
	double vs_primary;	/* secondary only: primary / secondary cycles, per run */
};

struct dispatch_report {
	const char *role;	/* "primary" | "secondary" */
	const char *error;	/* the process failed: why */
	double timer_cycles;	/* median cold-timer overhead */
	struct dispatch_case_result c[DISPATCH_CASES];
};

/* Reduce @runs samples (cold ns filled from @tsc_ghz) into @rep. */
void dispatch_report_make(struct dispatch_report *rep, struct dispatch_sample *s,
			  unsigned runs, double tsc_ghz);
/* Secondary vs primary, run by run. */
void dispatch_report_compare(struct dispatch_report *sec, const struct dispatch_sample *ps,
			     const struct dispatch_sample *ss, unsigned runs);

struct dispatch_meta {
	unsigned runs;
	uint64_t calls;
	unsigned cold_calls;
	int cpu;
	double tsc_ghz;
	mpops_ops_id_t id;
	unsigned id_count;	/* entries in the name table */
	double load[2];		/* 1-minute load average before and after */
};

/* The 1-minute load average (NaN if unknown): other work on the machine. */
double dispatch_loadavg(void);

void dispatch_table_print(FILE *f, const struct dispatch_meta *m,
			  const struct dispatch_report *rep, unsigned nrep);
/* @return 0 or -errno. */
int dispatch_json_write(const char *path, const struct dispatch_meta *m,
			const struct dispatch_report *rep, unsigned nrep);

#endif
