/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A small ops class for the tests: a device whose notify op records which
 * implementation ran, in which process. Every test program compiles its
 * own copy of the class and of the implementations it registers.
 */
#ifndef MPOPS_TEST_DEMO_OPS_H
#define MPOPS_TEST_DEMO_OPS_H

#include <stddef.h>
#include <stdint.h>

#include <mpops/mpops.h>

/* The queue number notify takes. Test builds change what it is
 * (-DDEMO_QUEUE_T=...) behind the same spelling of the member list. */
#ifndef DEMO_QUEUE_T
#define DEMO_QUEUE_T uint32_t
#endif
typedef DEMO_QUEUE_T demo_queue_t;

struct demo_dev_shared {
	mpops_ops_id_t ops_id;
	uint16_t pad;
	uint32_t index;
	uint64_t calls;
	int32_t last_pid;
	uint32_t last_impl;	/* 'A' alpha, 'B' beta, 'C' gamma, 'D' delta */
};

#define DEMO_DEVS 4
struct demo_devs_shared {
	uint32_t n;
	uint32_t pad;
	struct demo_dev_shared dev[DEMO_DEVS];
};

/* The origin's layout: a raw function pointer in shared memory. Only the
 * regression test builds this; it is the bug, kept to prove it. */
struct origin_bug_dev {
	int (*raw_notify)(struct demo_dev_shared *dev, demo_queue_t q);
	struct demo_dev_shared dev;
};

#ifdef DEMO_MISMATCH
#define DEMO_OPS(OP)                                                         \
	OP(int, notify, (struct demo_dev_shared *, demo_queue_t))            \
	OP(int, ident, (char * /* buf */, size_t /* len */))                 \
	OP(int, reset, (struct demo_dev_shared *))
#else
#define DEMO_OPS(OP)                                                         \
	OP(int, notify, (struct demo_dev_shared *, demo_queue_t))            \
	OP(int, ident, (char * /* buf */, size_t /* len */))
#endif

MPOPS_OPS_CLASS_DECLARE(demo, DEMO_OPS)

/* The implementations, one macro each so every program gets its own code. */
#ifdef DEMO_MISMATCH
#define DEMO_RESET_INIT(nm) .reset = nm##_reset,
#define DEMO_RESET_FN(nm)                                                    \
	static int nm##_reset(struct demo_dev_shared *dev) { dev->calls = 0; return 0; }
#else
#define DEMO_RESET_INIT(nm)
#define DEMO_RESET_FN(nm)
#endif

#define DEMO_IMPL(nm, code)                                                  \
	int demo_##nm##_notify(struct demo_dev_shared *dev, demo_queue_t q); \
	int demo_##nm##_notify(struct demo_dev_shared *dev, demo_queue_t q) \
	{                                                                    \
		(void)q;                                                     \
		dev->calls++;                                                \
		dev->last_pid = getpid();                                    \
		dev->last_impl = (code);                                     \
		return (code);                                               \
	}                                                                    \
	static int nm##_ident(char *buf, size_t len)                         \
	{                                                                    \
		return snprintf(buf, len, "%s@%d", #nm, (int)getpid());      \
	}                                                                    \
	DEMO_RESET_FN(nm)                                                    \
	const struct demo_ops demo_##nm##_ops = {                            \
		.notify = demo_##nm##_notify,                                \
		.ident = nm##_ident,                                         \
		DEMO_RESET_INIT(nm)                                          \
	};                                                                   \
	MPOPS_OPS_IMPL(demo, nm, &demo_##nm##_ops)

extern const struct demo_ops demo_alpha_ops, demo_beta_ops, demo_gamma_ops,
	demo_delta_ops;
extern const struct mpops_ops_impl mpops_impl_demo_alpha, mpops_impl_demo_beta,
	mpops_impl_demo_gamma, mpops_impl_demo_delta;
int demo_alpha_notify(struct demo_dev_shared *dev, demo_queue_t q);

/* Request types the test primary serves. */
enum {
	DEMO_MSG_ECHO = MPOPS_MSG_USER + 1,	/* data back with "-reply" */
	DEMO_MSG_GET_FDS = MPOPS_MSG_USER + 2,	/* N eventfds with values 1..N */
	DEMO_MSG_PUT_FDS = MPOPS_MSG_USER + 3,	/* check N eventfds, values 1001.. */
	DEMO_MSG_SLOW = MPOPS_MSG_USER + 4,	/* sleeps 1.5 s */
	DEMO_MSG_KICKFD = MPOPS_MSG_USER + 5,	/* the test's kick eventfd */
};

#endif
