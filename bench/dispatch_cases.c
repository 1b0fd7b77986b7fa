/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The measured code of the dispatch benchmark: one loop per case, built
 * the same way in the primary and in the secondary.
 *
 * Every iteration reads the benchmark's environment pointer from a
 * volatile (env_ptr), so the compiler cannot hoist any part of a case's
 * lookup out of the loop: each call pays its whole lookup, as a burst
 * function called with a port pointer does. The arguments of the op (the
 * process-local hw struct and the queue number) come from the same
 * environment in every case, direct included.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include <mpops/port_driver.h>

#include "dispatch.h"

/* ==== process-local state ============================================== */

/* raw_fnptr_local: a function pointer in a process-local struct.
 * raw_burst_local: the bench port driver's burst and its queue context
 * the same way, as a driver without the port layer would keep them. */
struct dispatch_local_dev {
	_Alignas(64) dispatch_notify_fn notify_queue;
	mpops_port_burst_fn burst;
	void *burst_queue;
};

/* mpops_cached: the driver's per-queue fast-path struct (vtnet's p->qp[qp]),
 * its ops pointer resolved once from the shared ID. */
struct dispatch_qp_local {
	const struct dispatch_ops *ops;
	void *slot;
};
struct dispatch_port_local {
	_Alignas(64) struct dispatch_qp_local qp[DISPATCH_QUEUES / 2];
	const struct dispatch_dev_shared *sh;
};

/* dpdk_port_array: DPDK virtio's virtio_hw_internal[RTE_MAX_ETHPORTS],
 * indexed by the port_id the shared hw struct holds. */
#define DISPATCH_MAX_PORTS 32
struct dispatch_port_entry {
	const struct dispatch_ops *ops;
	void *io;
};

struct dispatch_env {
	_Alignas(64) struct dispatch_hw_local *hw;
	uint16_t queue;
	uint16_t qp;
	uint16_t port_qp;		/* mpops_port: the queue pair this process claimed */
	struct mpops_port *mport;
	const struct dispatch_dev_shared *sh;
	const struct dispatch_local_dev *local;
	const struct dispatch_port_local *port;
	const char *cls;
	const char *impl;
	const char *sym;
};

static _Alignas(64) struct dispatch_hw_local hw;
static struct dispatch_local_dev local_dev;
static struct dispatch_port_local port;
static _Alignas(64) struct dispatch_port_entry dispatch_ports[DISPATCH_MAX_PORTS];
static struct dispatch_env env;
/* The names by_name and dlsym look up, at the same alignment in both
 * programs (strcmp's path depends on where its arguments sit). */
static const _Alignas(64) char name_cls[] = "dispatch";
static const _Alignas(64) char name_impl[] = DISPATCH_TARGET_IMPL;
static const _Alignas(64) char name_sym[] = DISPATCH_TARGET_SYMBOL;
static const struct dispatch_env *volatile env_ptr = &env;
static volatile uint64_t sink;

/* ==== timing ============================================================ */

/*
 * lfence; rdtsc; lfence, as the kernel's rdtsc_ordered(): the timed code
 * cannot start before the first read nor finish after the second. (Not
 * rdtscp: valgrind cannot run it, and dispatch-instructions.sh uses the
 * same binaries.)
 */
static inline uint64_t tsc_read(void)
{
	uint64_t t;

	_mm_lfence();
	t = __rdtsc();
	_mm_lfence();
	return t;
}

static double ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t cal_tsc;
static double cal_ns;

double dispatch_tsc_ghz(void)
{
	return (double)(__rdtsc() - cal_tsc) / (ns_now() - cal_ns);
}

/* ==== the cases: one call each ========================================= */

#define CASE_BODY static inline __attribute__((always_inline)) int

/* A direct call of the implementation (not inlined: another file). */
CASE_BODY body_direct(const struct dispatch_env *e)
{
	return dispatch_user_notify_queue(e->hw, e->queue);
}

/* Load the pointer from a process-local struct, call it. */
CASE_BODY body_raw_fnptr_local(const struct dispatch_env *e)
{
	return e->local->notify_queue(e->hw, e->queue);
}

/* Load the pointer the primary stored in shared memory, call it. */
CASE_BODY body_raw_fnptr_shared(const struct dispatch_env *e)
{
	uint64_t raw = e->sh->raw_notify;
	dispatch_notify_fn fn;

	memcpy(&fn, &raw, sizeof(fn));
	return fn(e->hw, e->queue);
}

/* Load the ID from shared memory; the op from this process's table slot. */
CASE_BODY body_mpops_id(const struct dispatch_env *e)
{
	return MPOPS_OPS(dispatch, e->sh->ops_id)->notify_queue(e->hw, e->queue);
}

/* The per-queue fast-path struct: p->qp[qp].ops->notify_queue(). */
CASE_BODY body_mpops_cached(const struct dispatch_env *e)
{
	return e->port->qp[e->qp].ops->notify_queue(e->hw, e->queue);
}

/* The same burst function and context as mpops_port, from a local struct. */
CASE_BODY body_raw_burst_local(const struct dispatch_env *e)
{
	return e->local->burst(e->local->burst_queue, NULL, 0);
}

/* The port layer's inline burst: busy word, epoch check, the cached fn. */
CASE_BODY body_mpops_port(const struct dispatch_env *e)
{
	return mpops_rx_burst(e->mport, e->port_qp, NULL, 0);
}

/* Load port_id from shared memory, the process-local port array entry. */
CASE_BODY body_dpdk_port_array(const struct dispatch_env *e)
{
	return dispatch_ports[e->sh->port_id].ops->notify_queue(e->hw, e->queue);
}

/* mpops_ops_find() by class and implementation name, then the table. */
CASE_BODY body_by_name(const struct dispatch_env *e)
{
	mpops_ops_id_t id = MPOPS_OPS_ID_NONE;

	/* On failure id stays 0: the dummy op, and the run's check fails. */
	mpops_ops_find(e->cls, e->impl, &id);
	return MPOPS_OPS(dispatch, id)->notify_queue(e->hw, e->queue);
}

/* dlsym(RTLD_DEFAULT, name), then call (setup checked it resolves). */
CASE_BODY body_dlsym(const struct dispatch_env *e)
{
	void *p = dlsym(RTLD_DEFAULT, e->sym);
	dispatch_notify_fn fn;

	memcpy(&fn, &p, sizeof(fn));
	return fn(e->hw, e->queue);
}

/*
 * For each case: DISPATCH_SITES copies of a warm loop of n calls, and one
 * cold call timed alone (the caller flushes first). noinline so callgrind
 * can count each loop on its own (--toggle-collect=dispatch_warm_<case>_*).
 *
 * Why copies: on the EPYC VM of doc/PERFORMANCE.md an indirect call site
 * runs in one of two steady speeds, about 2.4 or 3.6 TSC ticks per
 * iteration here, chosen by the branch predictor and kept for the life
 * of the process. Which one a given site gets is luck, the same for a raw
 * pointer as for an mpops lookup. Each copy is its own call site; a run
 * reports the median of the copies, so one lucky site does not decide a
 * case. The "+ k" keeps the compiler from folding the copies into one.
 */
#define DISPATCH_SITES 4
#define DISPATCH_WARM_FN(nm, k)                                              \
	static __attribute__((noinline)) uint64_t dispatch_warm_##nm##_##k(uint64_t n) \
	{                                                                    \
		uint64_t sum = 0;                                            \
		for (uint64_t i = 0; i < n; i++)                             \
			sum += (uint64_t)body_##nm(env_ptr);                 \
		return sum + k;                                              \
	}
#define DISPATCH_CASE_FNS(nm)                                                \
	DISPATCH_WARM_FN(nm, 0)                                              \
	DISPATCH_WARM_FN(nm, 1)                                              \
	DISPATCH_WARM_FN(nm, 2)                                              \
	DISPATCH_WARM_FN(nm, 3)                                              \
	static __attribute__((noinline)) uint64_t dispatch_cold_##nm(void)  \
	{                                                                    \
		uint64_t t0 = tsc_read();                                    \
		int rc = body_##nm(env_ptr);                                 \
		uint64_t t1 = tsc_read();                                    \
		sink += (uint64_t)rc;                                        \
		return t1 - t0;                                              \
	}
#define DISPATCH_SITES_OF(nm)                                                \
	{ dispatch_warm_##nm##_0, dispatch_warm_##nm##_1,                    \
	  dispatch_warm_##nm##_2, dispatch_warm_##nm##_3 }

DISPATCH_CASE_FNS(direct)
DISPATCH_CASE_FNS(raw_fnptr_local)
DISPATCH_CASE_FNS(raw_fnptr_shared)
DISPATCH_CASE_FNS(mpops_id)
DISPATCH_CASE_FNS(mpops_cached)
DISPATCH_CASE_FNS(raw_burst_local)
DISPATCH_CASE_FNS(mpops_port)
DISPATCH_CASE_FNS(dpdk_port_array)
DISPATCH_CASE_FNS(by_name)
DISPATCH_CASE_FNS(dlsym)

/* The cold timer's own cost: the same fences and env load, no call. */
static __attribute__((noinline)) uint64_t dispatch_cold_timer(void)
{
	uint64_t t0 = tsc_read();
	const struct dispatch_env *e = env_ptr;
	uint64_t t1 = tsc_read();

	sink += e->queue;
	return t1 - t0;
}

struct dispatch_case_desc {
	const char *name;
	uint64_t (*warm[DISPATCH_SITES])(uint64_t n);
	uint64_t (*cold)(void);
	const char *per_call;	/* what one call does */
	const char *flushed;	/* what _cold flushes */
};

static const struct dispatch_case_desc cases[DISPATCH_BASE_CASES] = {
	[DISPATCH_DIRECT] = { "direct", DISPATCH_SITES_OF(direct), dispatch_cold_direct,
		"call dispatch_user_notify_queue() directly (another file, noinline)",
		"nothing (no lookup)" },
	[DISPATCH_RAW_FNPTR_LOCAL] = { "raw_fnptr_local", DISPATCH_SITES_OF(raw_fnptr_local),
		dispatch_cold_raw_fnptr_local,
		"load fn from a process-local struct, call it",
		"the local struct's line" },
	[DISPATCH_RAW_FNPTR_SHARED] = { "raw_fnptr_shared", DISPATCH_SITES_OF(raw_fnptr_shared),
		dispatch_cold_raw_fnptr_shared,
		"load fn the primary stored in the shared struct, call it (primary only)",
		"the shared struct's line" },
	[DISPATCH_MPOPS_ID] = { "mpops_id", DISPATCH_SITES_OF(mpops_id), dispatch_cold_mpops_id,
		"load ops_id from the shared struct; MPOPS_OPS(dispatch, id) = "
		"&table[id < 256 ? id : 0] in this process (a cmov, no load); load "
		"->notify_queue from that slot (a copy of the ops struct); call",
		"the shared struct, the table slot" },
	[DISPATCH_MPOPS_CACHED] = { "mpops_cached", DISPATCH_SITES_OF(mpops_cached),
		dispatch_cold_mpops_cached,
		"p->qp[qp].ops->notify_queue: the per-queue ops pointer resolved once at setup",
		"the qp struct, the ops struct" },
	[DISPATCH_RAW_BURST_LOCAL] = { "raw_burst_local", DISPATCH_SITES_OF(raw_burst_local),
		dispatch_cold_raw_burst_local,
		"load the port driver's rx fn and its queue context from a process-local "
		"struct, call it (mpops_port without the port layer)",
		"the local struct's line, the queue context" },
	[DISPATCH_MPOPS_PORT] = { "mpops_port", DISPATCH_SITES_OF(mpops_port),
		dispatch_cold_mpops_port,
		"mpops_rx_burst(port, qp, pkts, 0): store the queue pair's busy word, compare "
		"the fast-path entry's epoch with the port's (the word beside busy), call the "
		"cached rx fn, clear busy",
		"the fast-path entry, the claim's busy and epoch words, the queue context" },
	[DISPATCH_DPDK_PORT_ARRAY] = { "dpdk_port_array", DISPATCH_SITES_OF(dpdk_port_array),
		dispatch_cold_dpdk_port_array,
		"load port_id from the shared struct; table[port_id].ops->notify_queue "
		"from a process-local array of 32 ports",
		"the shared struct, the array entry, the ops struct" },
	[DISPATCH_BY_NAME] = { "by_name", DISPATCH_SITES_OF(by_name), dispatch_cold_by_name,
		"mpops_ops_find(\"dispatch\", \"user\") (linear search of the shared name "
		"table, strcmp per entry), MPOPS_OPS(dispatch, id), call",
		"the shared name table (all of it), the table slot" },
	[DISPATCH_DLSYM] = { "dlsym", DISPATCH_SITES_OF(dlsym), dispatch_cold_dlsym,
		"dlsym(RTLD_DEFAULT, \"dispatch_user_notify_queue\") (found in the "
		"executable, exported with -rdynamic), call",
		"the executable's .gnu.hash, .dynsym, .dynstr and .gnu.version "
		"(not ld.so's own structures)" },
};

const char *dispatch_case_name(unsigned c)
{
	static char cold[DISPATCH_BASE_CASES][32];

	if (c >= DISPATCH_CASES)
		return "?";
	if (!DISPATCH_IS_COLD(c))
		return cases[c].name;
	c -= DISPATCH_BASE_CASES;
	if (!cold[c][0])
		snprintf(cold[c], sizeof(cold[c]), "%s_cold", cases[c].name);
	return cold[c];
}

int dispatch_case_find(const char *name)
{
	for (unsigned c = 0; c < DISPATCH_CASES; c++)
		if (strcmp(dispatch_case_name(c), name) == 0)
			return (int)c;
	return -1;
}

void dispatch_describe(FILE *f)
{
	for (unsigned c = 0; c < DISPATCH_BASE_CASES; c++)
		fprintf(f, "  %-16s per call: %s\n  %-16s _cold flushes: %s\n", cases[c].name,
			cases[c].per_call, "", cases[c].flushed);
}

/* ==== cold: what each case's lookup reads ================================ */

#define FLUSH_RANGES 4
struct flush_set {
	unsigned n;
	const void *p[FLUSH_RANGES];
	size_t len[FLUSH_RANGES];
};

static struct flush_set flush[DISPATCH_BASE_CASES];

static void flush_add(unsigned c, const void *p, size_t len)
{
	struct flush_set *s = &flush[c];

	if (p && len && s->n < FLUSH_RANGES) {
		s->p[s->n] = p;
		s->len[s->n++] = len;
	}
}

static void flush_lines(const struct flush_set *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		uintptr_t a = (uintptr_t)s->p[i] & ~(uintptr_t)63;
		uintptr_t end = (uintptr_t)s->p[i] + s->len[i];

		for (; a < end; a += 64)
			_mm_clflush((const void *)a);
	}
	_mm_mfence();
}

/* The shared name table, found by its allocation tag (public API only). */
static int name_table_find(struct mpops_region *r, const void **p, size_t *len)
{
	char tag[MPOPS_NAME_MAX + 1];
	mpops_off_t start;
	size_t size;

	for (mpops_off_t off = 0; off < (1u << 20); off += 64) {
		if (mpops_alloc_find(r, off, &start, &size, tag) < 0)
			continue;
		if (strcmp(tag, "mpops.ops") == 0) {
			*p = mpops_ptr(mpops_region_base(r), start);
			*len = size;
			return 0;
		}
		off = (start + size + 63) & ~(mpops_off_t)63;
	}
	return -ENOENT;
}

struct dyn_range {
	uintptr_t lo, hi;
};

/* The executable's dynamic symbol lookup tables, which dlsym reads. */
static int exe_dynsym_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct dyn_range *out = arg;
	uintptr_t gnu_hash = 0, symtab = 0, strtab = 0, versym = 0, strsz = 0;
	const ElfW(Dyn) *dyn = NULL;
	int inside = 0;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		uintptr_t v = dyn->d_un.d_ptr;

		/* ld.so relocates these in place for some objects, not others. */
		if (dyn->d_tag != DT_STRSZ && v < info->dlpi_addr)
			v += info->dlpi_addr;
		switch (dyn->d_tag) {
		case DT_GNU_HASH: gnu_hash = v; break;
		case DT_SYMTAB: symtab = v; break;
		case DT_STRTAB: strtab = v; break;
		case DT_VERSYM: versym = v; break;
		case DT_STRSZ: strsz = dyn->d_un.d_val; break;
		default: break;
		}
	}
	if (!gnu_hash || !symtab || !strtab || strtab < symtab)
		return 1;
	out->lo = gnu_hash < symtab ? gnu_hash : symtab;
	out->hi = strtab + strsz;
	if (versym) {
		uintptr_t vend = versym + (strtab - symtab) / sizeof(ElfW(Sym)) * 2;

		out->lo = versym < out->lo ? versym : out->lo;
		out->hi = vend > out->hi ? vend : out->hi;
	}
	/* Only flush what lies in one loaded segment of the executable. */
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t s = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && out->lo >= s && out->hi <= s + ph->p_memsz)
			inside = 1;
	}
	if (!inside || out->hi - out->lo > (1u << 20))
		out->lo = out->hi = 0;
	return 1;	/* the first object is the executable */
}

/* ==== the bench port driver ============================================ */

static struct dispatch_burst_queue burst_q;

static int bp_open(struct mpops_port *port, void **priv) { (void)port; *priv = NULL; return 0; }
static int bp_close(struct mpops_port *port, void *priv) { (void)port; (void)priv; return 0; }
static int bp_start(struct mpops_port *port) { mpops_port_link_set(port, 1); return 0; }
static int bp_stop(struct mpops_port *port) { (void)port; return 0; }
static int bp_slot_attach(struct mpops_port *port, void **slot)
{
	(void)port;
	*slot = &burst_q;
	return 0;
}
static int bp_slot_detach(struct mpops_port *port, void *slot) { (void)port; (void)slot; return 0; }
static int bp_fds_export(struct mpops_port *port, int *fds, int max)
{
	(void)port;
	(void)fds;
	(void)max;
	return 0;
}
/* Its burst moves no buffers: it has none to mark (port_driver.h). */
static int bp_queue_setup(struct mpops_port *port, uint16_t qp, void *slot,
			  struct mpops_port_queue *q)
{
	(void)port;
	(void)qp;
	q->rx = dispatch_port_rx;
	q->tx = dispatch_port_rx;
	q->queue = slot;
	return 0;
}
/* Its bursts move no buffers: nothing is ever left half done. */
static int bp_queue_takeover(struct mpops_port *port, uint16_t qp, void *slot, int32_t dead)
{
	(void)port;
	(void)qp;
	(void)slot;
	(void)dead;
	return 0;
}
static const struct mpops_port_drv_ops bench_port_ops = {
	.open = bp_open, .close = bp_close, .start = bp_start, .stop = bp_stop,
	.slot_attach = bp_slot_attach, .slot_detach = bp_slot_detach,
	.fds_export = bp_fds_export, .queue_setup = bp_queue_setup,
	.queue_takeover = bp_queue_takeover,
};
MPOPS_OPS_IMPL(mpops_port_drv, dispatch, &bench_port_ops)

int dispatch_port_create(struct mpops_region *r)
{
	struct mpops_port_conf c = { .sz = sizeof(c), .nb_qp = 2, .pool_size = 64 };
	struct mpops_port *p;
	int rc;

	if ((rc = mpops_port_create(r, DISPATCH_PORT, &mpops_impl_mpops_port_drv_dispatch, &c,
				    &p)) < 0 ||
	    (rc = mpops_port_publish(p)) < 0 || (rc = mpops_port_start(p)) < 0)
		return rc;
	return 0;	/* the handle lives as long as the process */
}

/* ==== setup ============================================================= */

static struct dispatch_cfg cfg;

int dispatch_setup(struct mpops_region *r, const struct dispatch_dev_shared *sh,
		   const struct dispatch_cfg *c)
{
	const struct dispatch_ops *ops;
	struct dyn_range dr = { 0, 0 };
	const void *names = NULL;
	size_t names_len = 0;
	void *sym;
	int rc;

	cfg = *c;
	if (!cfg.primary)
		cfg.cases &= ~(1u << DISPATCH_RAW_FNPTR_SHARED);
	/* Checked resolution, once, as a driver does at attach. */
	if ((rc = mpops_ops_resolve_dispatch(sh->ops_id, &ops)) < 0 || ops != &dispatch_user_ops) {
		fprintf(stderr, "dispatch: ID %u does not resolve to this program's dispatch/user (%d)\n",
			sh->ops_id, rc);
		return rc < 0 ? rc : -EPROTO;
	}
	if (sh->port_id >= DISPATCH_MAX_PORTS || sh->queue >= DISPATCH_QUEUES) {
		fprintf(stderr, "dispatch: port %u / queue %u out of range\n", sh->port_id, sh->queue);
		return -ERANGE;
	}
	sym = dlsym(RTLD_DEFAULT, DISPATCH_TARGET_SYMBOL);
	if (!sym) {
		fprintf(stderr, "dispatch: dlsym(%s): %s (link with export_dynamic)\n",
			DISPATCH_TARGET_SYMBOL, dlerror());
		return -ENOENT;
	}

	/* The port: the primary claims queue pair 0, the secondary 1. */
	burst_q = (struct dispatch_burst_queue){ .hw = &hw, .queue = sh->queue };
	if ((rc = mpops_port_open(r, DISPATCH_PORT, &env.mport)) < 0 ||
	    (rc = mpops_port_claim(env.mport, cfg.primary ? 0 : 1)) < 0) {
		fprintf(stderr, "dispatch: cannot open and claim the bench port: %s\n", strerror(-rc));
		return rc;
	}

	local_dev.notify_queue = dispatch_user_notify_queue;
	local_dev.burst = dispatch_port_rx;
	local_dev.burst_queue = &burst_q;
	port.sh = sh;
	port.qp[sh->queue / 2].ops = ops;
	dispatch_ports[sh->port_id].ops = ops;
	env = (struct dispatch_env){
		.hw = &hw, .queue = sh->queue, .qp = (uint16_t)(sh->queue / 2), .sh = sh,
		.mport = env.mport, .port_qp = cfg.primary ? 0 : 1,
		.local = &local_dev, .port = &port, .cls = name_cls, .impl = name_impl,
		.sym = name_sym,
	};

	flush_add(DISPATCH_RAW_FNPTR_LOCAL, &local_dev, sizeof(local_dev));
	flush_add(DISPATCH_RAW_FNPTR_SHARED, sh, sizeof(*sh));
	flush_add(DISPATCH_RAW_BURST_LOCAL, &local_dev, sizeof(local_dev));
	flush_add(DISPATCH_RAW_BURST_LOCAL, &burst_q, sizeof(burst_q));
	flush_add(DISPATCH_MPOPS_ID, sh, sizeof(*sh));
	flush_add(DISPATCH_MPOPS_ID, &mpops__tbl_dispatch[sh->ops_id], sizeof(*ops));
	flush_add(DISPATCH_MPOPS_CACHED, &port.qp[env.qp], sizeof(port.qp[0]));
	flush_add(DISPATCH_MPOPS_CACHED, ops, sizeof(*ops));
	{
		struct mpops__port_fp *fp = (struct mpops__port_fp *)env.mport;
		struct mpops__port_fpq *q = &fp->q[env.port_qp];

		flush_add(DISPATCH_MPOPS_PORT, q, sizeof(*q));
		flush_add(DISPATCH_MPOPS_PORT, q->busy, 2 * sizeof(*q->busy));
		flush_add(DISPATCH_MPOPS_PORT, &burst_q, sizeof(burst_q));
	}
	flush_add(DISPATCH_DPDK_PORT_ARRAY, sh, sizeof(*sh));
	flush_add(DISPATCH_DPDK_PORT_ARRAY, &dispatch_ports[sh->port_id], sizeof(dispatch_ports[0]));
	flush_add(DISPATCH_DPDK_PORT_ARRAY, ops, sizeof(*ops));
	if (name_table_find(r, &names, &names_len) < 0)
		fprintf(stderr, "dispatch: name table not found: by_name_cold flushes less\n");
	flush_add(DISPATCH_BY_NAME, names, names_len);
	flush_add(DISPATCH_BY_NAME, &mpops__tbl_dispatch[sh->ops_id], sizeof(*ops));
	dl_iterate_phdr(exe_dynsym_cb, &dr);
	if (dr.hi == dr.lo)
		fprintf(stderr, "dispatch: dynamic symbol tables not found: dlsym_cold flushes nothing\n");
	flush_add(DISPATCH_DLSYM, (const void *)dr.lo, dr.hi - dr.lo);

	cal_tsc = __rdtsc();
	cal_ns = ns_now();
	return 0;
}

/* ==== running =========================================================== */

static uint64_t kicks_total(void)
{
	uint64_t n = 0;

	for (unsigned q = 0; q < DISPATCH_QUEUES; q++)
		n += hw.kicks[q];
	return n;
}

static int selected(unsigned c)
{
	return (cfg.cases >> c) & 1;
}

/*
 * A run is cut into DISPATCH_SLICES slices; in each slice every selected
 * case gets its share of the calls, in a fresh random order, through call
 * site (slice % DISPATCH_SITES). A slow stretch of the host (milliseconds
 * to seconds here) thus falls on all cases alike instead of on whichever
 * case was running.
 */
#define DISPATCH_SLICES (2 * DISPATCH_SITES)

/* Warm: n calls in a row through @site, timed as a batch with both clocks
 * (added to *cycles and *ns). */
static int time_warm(unsigned c, unsigned site, uint64_t n, double *cycles, double *ns)
{
	uint64_t before = kicks_total(), t0, t1;
	double n0, n1;

	n0 = ns_now();
	t0 = tsc_read();
	sink += cases[c].warm[site](n);
	t1 = tsc_read();
	n1 = ns_now();
	if (cycles) {
		*cycles += (double)(t1 - t0);
		*ns += n1 - n0;
	}
	if (kicks_total() - before != n || hw.wrong) {
		fprintf(stderr, "dispatch: %s did not reach dispatch/user on every call\n",
			cases[c].name);
		return -EIO;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Mean of the middle 80% of n samples (sorted in place). The TSC of this
 * kind of machine may advance in coarse steps (21 ticks, 10 ns, on the
 * EPYC VM of doc/PERFORMANCE.md): a median would snap to a step, while the
 * mean of many calls, which start at random phases of the step, resolves
 * below it. Trimming drops the interrupts.
 */
static double trimmed_mean_u64(uint64_t *v, unsigned n)
{
	unsigned lo = n / 10, hi = n - n / 10;
	double sum = 0;

	if (n == 0)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_u64);
	for (unsigned i = lo; i < hi; i++)
		sum += (double)v[i];
	return sum / (hi - lo);
}

/* Cold: n times flush, then one timed call, appended to v. */
static int time_cold(unsigned c, unsigned n, uint64_t *v)
{
	uint64_t before = kicks_total();

	for (unsigned i = 0; i < n; i++) {
		flush_lines(&flush[c]);
		v[i] = cases[c].cold();
	}
	if (kicks_total() - before != n || hw.wrong) {
		fprintf(stderr, "dispatch: %s_cold did not reach dispatch/user on every call\n",
			cases[c].name);
		return -EIO;
	}
	return 0;
}

static void time_timer(unsigned n, uint64_t *v)
{
	for (unsigned i = 0; i < n; i++) {
		_mm_mfence();
		v[i] = dispatch_cold_timer();
	}
}

int dispatch_warmup(void)
{
	uint64_t v[16];
	int rc = 0;

	for (unsigned c = 0; c < DISPATCH_BASE_CASES && rc == 0; c++) {
		if (!selected(c))
			continue;
		for (unsigned k = 0; k < DISPATCH_SITES && rc == 0 && cfg.warmup_calls; k++)
			rc = time_warm(c, k, cfg.warmup_calls / DISPATCH_SITES + 1, NULL, NULL);
		if (cfg.cold && rc == 0)
			rc = time_cold(c, 16, v);
	}
	return rc;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median_d(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Share @k of DISPATCH_SLICES of @total. */
static uint64_t slice_of(uint64_t total, unsigned k)
{
	return total / DISPATCH_SLICES + (k < total % DISPATCH_SLICES);
}

int dispatch_run(unsigned run, struct dispatch_sample *out)
{
	/* Work items: warm cases, cold cases, and the cold timer (last id). */
	unsigned order[DISPATCH_CASES + 1], n = 0, filled[DISPATCH_CASES + 1] = { 0 };
	uint64_t seed = 0x9e3779b97f4a7c15ULL * (run + 1), *cold = NULL;
	double cyc[DISPATCH_BASE_CASES][DISPATCH_SITES] = { { 0 } };
	double ns[DISPATCH_BASE_CASES][DISPATCH_SITES] = { { 0 } };
	uint64_t calls[DISPATCH_SITES] = { 0 };
	double timer = NAN;
	int rc = 0;

	for (unsigned c = 0; c < DISPATCH_CASES; c++) {
		out->cycles[c] = out->ns[c] = NAN;
		if (selected(c % DISPATCH_BASE_CASES) && (!DISPATCH_IS_COLD(c) || cfg.cold))
			order[n++] = c;
	}
	if (cfg.cold) {
		order[n++] = DISPATCH_CASES;
		/* Per cold case and for the timer: cold_calls samples. */
		cold = malloc((DISPATCH_BASE_CASES + 1) * (size_t)cfg.cold_calls * sizeof(*cold));
		if (!cold)
			return -ENOMEM;
	}
	for (unsigned k = 0; k < DISPATCH_SLICES; k++)
		calls[k % DISPATCH_SITES] += slice_of(cfg.calls, k);
	for (unsigned k = 0; k < DISPATCH_SLICES && rc == 0; k++) {
		unsigned site = k % DISPATCH_SITES;

		for (unsigned i = n; i > 1; i--) {
			unsigned j = (unsigned)(xorshift(&seed) % i), t = order[i - 1];

			order[i - 1] = order[j];
			order[j] = t;
		}
		for (unsigned i = 0; i < n && rc == 0; i++) {
			unsigned c = order[i], b = c - DISPATCH_BASE_CASES;
			unsigned m = (unsigned)slice_of(cfg.cold_calls, k);

			if (c == DISPATCH_CASES) {
				b = DISPATCH_BASE_CASES;
				time_timer(m, cold + (size_t)b * cfg.cold_calls + filled[c]);
				filled[c] += m;
			} else if (DISPATCH_IS_COLD(c)) {
				rc = time_cold(b, m, cold + (size_t)b * cfg.cold_calls + filled[c]);
				filled[c] += m;
			} else {
				rc = time_warm(c, site, slice_of(cfg.calls, k), &cyc[c][site],
					       &ns[c][site]);
			}
		}
	}
	/* Per call at each site; the run's figure is the median site. */
	for (unsigned c = 0; c < DISPATCH_BASE_CASES && rc == 0; c++) {
		double sc[DISPATCH_SITES], sn[DISPATCH_SITES];

		if (!selected(c))
			continue;
		for (unsigned k = 0; k < DISPATCH_SITES; k++) {
			sc[k] = cyc[c][k] / (double)calls[k];
			sn[k] = ns[c][k] / (double)calls[k];
		}
		out->cycles[c] = median_d(sc, DISPATCH_SITES);
		out->ns[c] = median_d(sn, DISPATCH_SITES);
	}
	if (cfg.cold && rc == 0) {
		/* The cold figures are net of the timer's own cost. */
		timer = trimmed_mean_u64(cold + (size_t)DISPATCH_BASE_CASES * cfg.cold_calls,
					 cfg.cold_calls);
		for (unsigned b = 0; b < DISPATCH_BASE_CASES; b++) {
			double v;

			if (!selected(b))
				continue;
			v = trimmed_mean_u64(cold + (size_t)b * cfg.cold_calls, cfg.cold_calls);
			out->cycles[DISPATCH_COLD(b)] = v > timer ? v - timer : 0;
		}
	}
	out->timer_cycles = timer;
	free(cold);
	return rc;
}
