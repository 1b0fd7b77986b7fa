/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared structs that hide each kind of finding of mpops-audit-types, for
 * its tests (check_audit.py). Every line that declares a member the tool
 * must report says so in a comment:
 *
 *     expect(KIND): PATH      reported, not allowed
 *     allowed(KIND): PATH     reported as allowed
 *
 * and the test asserts that the tool reports exactly those paths, with
 * that kind and this file and line, and nothing else. Included by two
 * translation units: each finding is still reported once.
 */
#ifndef MPOPS_TEST_AUDIT_FIXTURE_H
#define MPOPS_TEST_AUDIT_FIXTURE_H

#include <stdatomic.h>
#include <stdint.h>

#include <mpops/audit.h>

/* A function pointer three structs deep. */
struct fx_cb {
	uint32_t n;
	int (*cb)(void *arg, uint16_t q);	/* expect(function pointer): fx_dev_shared.outer.mid.cb.cb */
};
struct fx_mid {
	uint64_t x;
	struct fx_cb cb;
};
struct fx_outer {
	struct fx_mid mid;
};

/* A pointer behind a typedef. */
typedef struct fx_opaque *fx_handle_t;

/* An element of an array of structs. */
struct fx_ring {
	uint16_t idx;
	void *desc;	/* expect(pointer): fx_dev_shared.ring[4].desc */ /* allowed(pointer): fx_lock_shared.r.desc */ /* allowed(pointer): fx_wrap_shared.l.r.desc */
	mpops_off_t desc_off;
};

enum fx_state { FX_DOWN, FX_UP };

struct fx_dev_shared {
	uint32_t magic;
	char name[32];
	_Atomic uint32_t state;
	enum fx_state st;
	int32_t owner_pid;
	const volatile uint64_t gen;
	mpops_off_t next;
	uint16_t fds_max;		/* not an fd: the name ends in "max" */
	uint32_t counters[2][3];
	struct fx_outer outer;
	union {
		uint64_t token;
		void *ptr;		/* expect(pointer): fx_dev_shared.u.ptr */
	} u;
	fx_handle_t handle;		/* expect(pointer): fx_dev_shared.handle */
	struct fx_ring ring[4];
	mpops_fd_t kick;		/* expect(process-local integer): fx_dev_shared.kick */
	int32_t callfd;			/* expect(process-local integer): fx_dev_shared.callfd */
	union {				/* anonymous: adds nothing to the path */
		mpops_off_t hint_off;
		const char *hint;	/* expect(pointer): fx_dev_shared.hint */
	};
	void *primary_only;		/* allowed(pointer): fx_dev_shared.primary_only */
};
MPOPS_AUDIT_ALLOW(fx_dev_shared, primary_only, "fixture: written and read by the primary only");

/* A typedef'd anonymous struct is a root under the typedef's name. */
typedef struct {
	uint32_t n;
	void *p;			/* expect(pointer): fx_anon_shared.p */
} fx_anon_shared;

/* An exception on a nested member holds wherever its struct is nested. */
struct fx_lock_shared {
	uint64_t seq;
	struct fx_ring r;
};
MPOPS_AUDIT_ALLOW(fx_lock_shared, r.desc, "fixture: a nested member allowed by its path");

struct fx_wrap_shared {
	struct fx_lock_shared l;
};

/* Data only: nothing to report. */
struct fx_clean_shared {
	uint64_t magic;
	_Atomic uint64_t head;
	mpops_off_t ring_off;
	uint8_t mac[6];
	char path[108];
	struct {
		uint32_t a, b;
	} pair[8];
	int32_t pid;
	enum fx_state st;
};

/* Not shared: pointers and fds are fine here. */
struct fx_dev_local {
	struct fx_dev_shared *sh;
	int kickfd;
	int (*cb)(void *arg, uint16_t q);
};

extern struct fx_dev_shared fx_dev;
extern fx_anon_shared fx_anon;
extern struct fx_wrap_shared fx_wrap;
extern struct fx_clean_shared fx_clean;
extern struct fx_dev_local fx_local;

#endif
