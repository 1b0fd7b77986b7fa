/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-bench-pps internals: the case matrix, the processes a run starts,
 * and the report. Private to bench/.
 */
#ifndef MPOPS_BENCH_PPS_H
#define MPOPS_BENCH_PPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PPS_MAX_ROUNDS 64
#define PPS_MAX_SECONDARIES 8

enum pps_driver { DRV_MPOPS, DRV_DPDK };
enum pps_backend { BE_MPOPS_VHOST, BE_DPDK_VHOST };
enum pps_mode { MODE_TXONLY, MODE_RXONLY, MODE_LOOPBACK };
/* compare: ours against DPDK's; kicks: notification counts; scaling: N secondaries */
enum pps_group { G_COMPARE, G_KICKS, G_SCALING };

/* One run's outcome. */
struct pps_sample {
	double mpps;
	double kpp;		/* kicks per packet, < 0 unknown */
	double share_min, share_max;	/* scaling: per-secondary rate / mean */
	double foreign;		/* CPUs busy with processes not ours, during the run */
	int round;
};

struct pps_case {
	enum pps_group group;
	enum pps_driver driver;
	enum pps_backend backend;
	enum pps_mode mode;
	unsigned size;
	int mergeable;		/* 1 on, 0 off */
	int secondary;		/* role */
	unsigned secondaries;	/* processes doing the work besides the primary */
	int event_idx;		/* 1 on, 0 off, -1 not ours to choose (DPDK) */
	int kick_driven;	/* mpops-vhost --kick-driven */
	const char *skip;	/* why it cannot run at all, or NULL */

	struct pps_sample s[PPS_MAX_ROUNDS];
	unsigned ns;
	unsigned failures;
	unsigned disturbed;	/* runs redone because other processes took CPU */
	char error[200];	/* the last failure */
	int peer;		/* compare: the DPDK case of the same setting, -1 none */
	int primary_peer;	/* compare, secondary role: our primary case, -1 none */
};

/* Paths and settings every run uses. */
struct pps_env {
	const char *worker, *vhost, *testpmd;
	char rundir[128];
	int cpu_backend, cpu_frontend;
	double seconds;		/* measured window per run */
	double warmup;		/* before the window */
	unsigned mbufs;		/* pool size, ours and testpmd's */
	int verbose;
	unsigned seq;		/* makes socket names and DPDK file prefixes unique */
};

/* ---- pps_proc.c: processes ---- */

/** Run one case once. @return 0 and *out, or -1 with @p err filled. */
int pps_run(struct pps_env *env, const struct pps_case *c, struct pps_sample *out, char *err,
	    size_t errlen);
/** Stop every process still running (by pid), remove what they left. */
void pps_cleanup_all(struct pps_env *env);
/** Set by the signal handler: stop as soon as possible. */
extern volatile int pps_interrupted;

/** CPU time (s) of the whole machine and of this process and its reaped
 * children, to tell how much other processes took during a run. */
void pps_cpu_snapshot(double *machine_busy, double *ours);

/* ---- pps_report.c: statistics, table, JSON ---- */

double pps_median(const double *v, unsigned n);
const char *pps_driver_name(enum pps_driver d);
const char *pps_backend_name(enum pps_backend b);
const char *pps_mode_name(enum pps_mode m);
const char *pps_group_name(enum pps_group g);
void pps_print_table(const struct pps_case *cs, unsigned n);
int pps_write_json(const char *path, const struct pps_case *cs, unsigned n,
		   const struct pps_env *env, unsigned rounds, double elapsed);

#endif
