/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Where the buffers of a packet pool are, and giving back what nobody can
 * hold any more.
 *
 * Every buffer is in one place: the shared free ring, a handle's cache (in
 * shared memory, pkt_priv.h), or allocated, with its holder in its flags:
 * a process (by one of its handle records), a port's ring (a port driver's
 * bursts mark what they hand over and take back), or nobody (handed off
 * between processes). A chain's later segments go with their first one:
 * a packet received in several buffers is marked as the receiver's in its
 * first buffer only.
 *
 * The census reads all of it without locks (a dump tool attaches
 * read-only). Giving back runs in the primary, under the free ring's lock:
 *  - pool_reclaim(): for each process that is gone (pid and start time),
 *    its caches' entries and every buffer it held that is on no ring;
 *  - pktpool_recover_rings(): after a port's stop (its driver took every
 *    ring back), or for one queue after its claim was taken over from a
 *    dead owner, the buffers still marked as on those rings that the
 *    driver does not hold: a burst whose process died inside left them
 *    (between the marks a burst wrote and the driver's own state).
 * What cannot go back (a ring without room: corrupt state) is counted as
 * lost.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pkt_priv.h"
#include "region_priv.h"

/* ==== scanning ========================================================== */

struct scan {
	struct pktpool_shared *sh;
	struct mpops_pkt *meta;
	uint32_t count;
	uint8_t *mark;		/* per buffer: 0 not placed yet, else a MARK_* */
	uint8_t *seg;		/* per buffer: 1 if an allocated buffer's next points at it */
};

enum { MARK_NONE = 0, MARK_FREE, MARK_HELD, MARK_RING, MARK_TAKEN, MARK_SKIP };

static inline uint32_t flags_load(const struct mpops_pkt *m)
{
	return __atomic_load_n(&m->flags, __ATOMIC_ACQUIRE);
}

/* Index of the segment after @idx, or -1 (end, or not a buffer of the pool). */
static int64_t seg_after(const struct scan *s, uint32_t idx)
{
	mpops_off_t next = __atomic_load_n(&s->meta[idx].next, __ATOMIC_RELAXED);
	uint64_t rel = next - s->sh->meta_off;

	if (!next || rel >= (uint64_t)s->count * sizeof(struct mpops_pkt) ||
	    rel % sizeof(struct mpops_pkt))
		return -1;
	return (int64_t)(rel / sizeof(struct mpops_pkt));
}

/*
 * Place the allocated segments after @head that are not placed yet with
 * @mark (at most count steps: a next cycle ends there). @take, if not
 * NULL, decides for each (0: not this one, and the chain ends there).
 * @return how many.
 */
static uint32_t chain_mark(struct scan *s, uint32_t head, uint8_t mark,
			   int (*take)(struct scan *, uint32_t, void *), void *arg)
{
	uint32_t n = 0;
	int64_t i = (int64_t)head;

	for (uint32_t steps = 0; steps < s->count && (i = seg_after(s, (uint32_t)i)) >= 0;
	     steps++) {
		if (s->mark[i] != MARK_NONE || !(flags_load(&s->meta[i]) & MPOPS_PKT_F_ALLOCATED))
			break;
		if (take && !take(s, (uint32_t)i, arg))
			break;
		s->mark[i] = mark;
		n++;
	}
	return n;
}

static int scan_init(struct scan *s, struct pktpool_shared *sh)
{
	s->sh = sh;
	s->meta = pool_meta(sh);
	s->count = sh->count;
	s->mark = calloc(sh->count, 1);
	s->seg = calloc(sh->count, 1);
	if (!s->mark || !s->seg) {
		free(s->mark);
		free(s->seg);
		log_err("pktpool '%.*s': out of memory for a scan of %u buffers", MPOPS_NAME_MAX,
			sh->name, sh->count);
		return -ENOMEM;
	}
	return 0;
}

static void scan_fini(struct scan *s)
{
	free(s->mark);
	free(s->seg);
}

/* Which allocated buffers are a later segment of a chain: the first one
 * says who holds the chain. */
static void segments_find(struct scan *s)
{
	for (uint32_t i = 0; i < s->count; i++) {
		int64_t nx;

		if ((flags_load(&s->meta[i]) & MPOPS_PKT_F_ALLOCATED) && (nx = seg_after(s, i)) >= 0 &&
		    (flags_load(&s->meta[nx]) & MPOPS_PKT_F_ALLOCATED))
			s->seg[nx] = 1;
	}
}

/* Index of @m if it is a buffer of the scanned pool, else -1. */
static int64_t seg_index(const struct scan *s, const struct mpops_pkt *m)
{
	uint64_t rel = (uint64_t)((uintptr_t)m - (uintptr_t)s->meta);

	if (rel >= (uint64_t)s->count * sizeof(struct mpops_pkt) || rel % sizeof(struct mpops_pkt))
		return -1;
	return (int64_t)(rel / sizeof(struct mpops_pkt));
}

/* Is @o a ring owner of port @port (0: of any port)? */
static inline int ring_of(uint32_t o, uint32_t port)
{
	return (o & OWNER_RING) && (!port || owner_port(o) == port);
}

/* ==== census ============================================================ */

struct census_ctx {
	struct mpops_pktpool_census *c;
	int proc_of[PKTPOOL_HANDLES_MAX];	/* record -> c->procs[] or -1 */
};

/* The census's entry for the process of record @hs (added if new). */
static int census_proc(struct mpops_pktpool_census *c, const struct pkt_handle_shared *hs,
		       int32_t pid)
{
	for (uint32_t k = 0; k < c->nprocs; k++)
		if (c->procs[k].pid == pid && c->procs[k].start_time == hs->start_time)
			return (int)k;
	if (c->nprocs == MPOPS_PKTPOOL_CENSUS_PROCS)
		return -1;
	c->procs[c->nprocs] = (struct mpops_pktpool_census_proc){
		.pid = pid, .start_time = hs->start_time,
		.alive = mpops_proc_alive(pid, hs->start_time),
	};
	return (int)c->nprocs++;
}

int pktpool_census(struct mpops_region *r, mpops_off_t pool, uint32_t port,
		   struct mpops_pktpool_census *c)
{
	struct census_ctx *x;
	struct pktpool_shared *sh;
	struct pkt_ring_shared *rg;
	struct scan s;
	uint32_t head, tail, n, unusable = 0, placed;
	int rc;

	if (!r || !c || c->sz < sizeof(*c)) {
		log_err("mpops_pktpool_census: region and census must not be NULL, census.sz = sizeof(struct mpops_pktpool_census)");
		return -EINVAL;
	}
	if (!(sh = pool_header(r, pool, &rc)))
		return rc;
	memset((char *)c + sizeof(c->sz), 0, sizeof(*c) - sizeof(c->sz));
	if (!(x = calloc(1, sizeof(*x))))
		return -ENOMEM;
	x->c = c;
	if ((rc = scan_init(&s, sh)) < 0) {
		free(x);
		return rc;
	}
	rg = pool_ring(sh);
	c->reclaimed = __atomic_load_n(&sh->reclaimed, __ATOMIC_RELAXED);
	c->recovered = __atomic_load_n(&sh->recovered, __ATOMIC_RELAXED);
	c->lost = __atomic_load_n(&sh->lost, __ATOMIC_RELAXED);

	/* The free ring, then each handle's cache. */
	head = atomic_load_explicit(&rg->head, memory_order_acquire);
	tail = atomic_load_explicit(&rg->tail, memory_order_acquire);
	n = tail - head <= rg->capacity ? tail - head : 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t idx = rg->slots[(head + i) & rg->mask];

		if (idx < s.count && s.mark[idx] == MARK_NONE) {
			s.mark[idx] = MARK_FREE;
			c->ring++;
		} else if (idx < s.count) {
			c->twice++;
		}
	}
	for (uint32_t h = 0; h < sh->max_handles; h++) {
		struct pkt_handle_shared *hs = pool_handle(sh, h);
		int32_t pid = atomic_load(&hs->pid);
		uint32_t len = __atomic_load_n(&hs->len, __ATOMIC_ACQUIRE);
		int k;

		x->proc_of[h] = -1;
		if (!pid)
			continue;
		k = x->proc_of[h] = census_proc(c, hs, pid);
		if (k >= 0 && __atomic_load_n(&hs->state, __ATOMIC_RELAXED) == HANDLE_OPEN)
			c->procs[k].handles++;
		for (uint32_t j = 0; j < len && j < sh->cache_size; j++) {
			uint32_t idx = hs->cache[j];

			if (idx < s.count && s.mark[idx] == MARK_NONE) {
				s.mark[idx] = MARK_FREE;
				c->cached++;
				if (k >= 0)
					c->procs[k].cached++;
			} else if (idx < s.count) {
				c->twice++;
			}
		}
	}

	/* Allocated: each chain from its first buffer, then what no first
	 * buffer reached (a cycle, a chain cut by a death) by its own mark. */
	segments_find(&s);
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < s.count; i++) {
			uint32_t f = flags_load(&s.meta[i]), o = owner_of(f), segs;

			if (s.mark[i] != MARK_NONE || !(f & MPOPS_PKT_F_ALLOCATED) ||
			    (!pass && s.seg[i]))
				continue;
			if (o == OWNER_UNUSABLE) {
				s.mark[i] = MARK_SKIP;
				unusable++;
				continue;
			}
			s.mark[i] = o & OWNER_RING ? MARK_RING : MARK_HELD;
			segs = 1 + chain_mark(&s, i, s.mark[i], NULL, NULL);
			if (o & OWNER_RING) {
				c->on_rings += segs;
				if (!ring_of(o, port))
					continue;
				if (o & OWNER_RING_ANYQ)
					c->on_rings_anyq += segs;
				else
					c->on_queue[o & 15u][!!(o & OWNER_RING_TX)] += segs;
			} else if (o == 0) {
				c->handed_off += segs;
			} else if (o > sh->max_handles || x->proc_of[o - 1] < 0 ||
				   !c->procs[x->proc_of[o - 1]].alive) {
				c->gone += segs;	/* its record is free or its process gone */
			} else {
				c->held += segs;
				c->procs[x->proc_of[o - 1]].held += segs;
			}
		}
	}
	c->total = s.count - unusable;
	c->free = c->ring + c->cached;
	placed = c->free + c->held + c->on_rings + c->handed_off + c->gone;
	c->unaccounted = c->total > placed ? c->total - placed : 0;
	scan_fini(&s);
	free(x);
	return 0;
}

int mpops_pktpool_census(struct mpops_region *r, mpops_off_t pool,
			 struct mpops_pktpool_census *c)
{
	return pktpool_census(r, pool, 0, c);
}

/* ==== giving back ======================================================= */

struct give {
	uint32_t *idx;		/* buffers to give back */
	uint32_t n;
	const uint8_t *dead;	/* reclaim: records of gone processes, else NULL */
};

/* A live process's buffer in a chain being given back: a chain it was
 * handed without mpops_pkt_handoff(). Left to it. */
static int held_live(const struct scan *s, const struct give *g, uint32_t i)
{
	uint32_t o = owner_of(flags_load(&s->meta[i]));

	return g->dead && o && !(o & OWNER_RING) && o <= s->sh->max_handles && !g->dead[o - 1] &&
	       atomic_load(&pool_handle(s->sh, o - 1)->pid);
}

static int give_take(struct scan *s, uint32_t i, void *arg)
{
	struct give *g = arg;

	if (held_live(s, g, i))
		return 0;
	__atomic_store_n(&s->meta[i].flags, 0, __ATOMIC_RELEASE);
	g->idx[g->n++] = i;
	return 1;
}

/* Push the collected buffers onto the free ring (lock held). @return
 * how many did not fit (lost). */
static uint32_t give_push(struct pktpool_shared *sh, const struct give *g)
{
	struct pkt_ring_shared *rg = pool_ring(sh);
	uint32_t head = atomic_load(&rg->head), tail = atomic_load(&rg->tail);
	uint32_t room = rg->capacity - (tail - head), n = g->n < room ? g->n : room;

	for (uint32_t i = 0; i < n; i++)
		rg->slots[(tail + i) & rg->mask] = g->idx[i];
	atomic_store_explicit(&rg->tail, tail + n, memory_order_release);
	if (n < g->n) {
		sh->lost += g->n - n;
		log_err("pktpool '%.*s': its ring has no room for %u buffers given back (corrupt pool state): they are lost (counted); recreate the region",
			MPOPS_NAME_MAX, sh->name, g->n - n);
	}
	return g->n - n;
}

/* What one gone process left, for its log line. */
struct gone_proc {
	int32_t pid;
	uint32_t cached, held;
};

static struct gone_proc *gone_of(struct gone_proc *gp, unsigned *ngp, int32_t pid)
{
	for (unsigned k = 0; k < *ngp; k++)
		if (gp[k].pid == pid)
			return &gp[k];
	gp[*ngp] = (struct gone_proc){ .pid = pid };
	return &gp[(*ngp)++];
}

/*
 * Under the ring's lock: give back what the records marked in @dead held.
 * Their caches first: every entry once, its flag cleared unless a live
 * process holds the buffer (a copy a concurrent double free left). Then
 * every buffer whose owner is one of them, with the rest of its chain,
 * except what hangs off a buffer on a ring (a chain it transmitted).
 */
static int reclaim_locked(struct scan *s, const uint8_t *dead, struct gone_proc *gp, unsigned *ngp)
{
	struct pktpool_shared *sh = s->sh;
	struct give g = { .idx = malloc(sizeof(uint32_t) * s->count), .dead = dead };
	uint32_t before;

	if (!g.idx)
		return -ENOMEM;
	for (uint32_t h = 0; h < sh->max_handles; h++) {
		struct pkt_handle_shared *hs = pool_handle(sh, h);
		struct gone_proc *p;
		uint32_t len = hs->len;

		if (!dead[h])
			continue;
		p = gone_of(gp, ngp, atomic_load(&hs->pid));
		if (len > sh->cache_size) {
			log_err("pktpool '%.*s': pid %d's cache says %u entries, more than %u: its buffers are lost (counted)",
				MPOPS_NAME_MAX, sh->name, (int)p->pid, len, sh->cache_size);
			sh->lost += len;
			len = 0;
		}
		for (uint32_t j = 0; j < len; j++) {
			uint32_t idx = hs->cache[j], f;

			if (idx >= s->count || s->mark[idx] != MARK_NONE)
				continue;
			f = flags_load(&s->meta[idx]);
			/* A live holder's buffer: this entry is a stale copy. */
			if ((f & MPOPS_PKT_F_ALLOCATED) && held_live(s, &g, idx))
				continue;
			s->mark[idx] = MARK_TAKEN;
			give_take(s, idx, &g);
			p->cached++;
		}
	}
	/* Each chain from its first buffer: a ring's stays there, theirs comes
	 * back; then what no first buffer reached, by its own mark. */
	segments_find(s);
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < s->count; i++) {
			uint32_t f = flags_load(&s->meta[i]), o = owner_of(f);

			if (s->mark[i] != MARK_NONE || !(f & MPOPS_PKT_F_ALLOCATED) ||
			    (!pass && s->seg[i]))
				continue;
			if (!pass && ((o & OWNER_RING) || !o || o > sh->max_handles || !dead[o - 1])) {
				/* A ring's, or someone else's: its chain stays with it. */
				s->mark[i] = MARK_HELD;
				chain_mark(s, i, MARK_HELD, NULL, NULL);
				continue;
			}
			if ((o & OWNER_RING) || !o || o > sh->max_handles || !dead[o - 1])
				continue;
			before = g.n;
			s->mark[i] = MARK_TAKEN;
			give_take(s, i, &g);
			chain_mark(s, i, MARK_TAKEN, give_take, &g);
			gone_of(gp, ngp, atomic_load(&pool_handle(sh, o - 1)->pid))->held += g.n - before;
		}
	}
	give_push(sh, &g);
	sh->reclaimed += g.n;
	free(g.idx);
	return (int)g.n;
}

int pool_reclaim(struct pktpool_shared *sh)
{
	uint8_t dead[PKTPOOL_HANDLES_MAX] = { 0 };
	int32_t was[PKTPOOL_HANDLES_MAX] = { 0 };
	struct gone_proc gp[PKTPOOL_HANDLES_MAX];
	unsigned ngp = 0, ndead = 0;
	int32_t me = getpid();
	struct scan s;
	int rc;

	for (uint32_t h = 0; h < sh->max_handles; h++) {
		struct pkt_handle_shared *hs = pool_handle(sh, h);
		int32_t pid = atomic_load(&hs->pid);

		/* A record being taken has no start time yet: any process of
		 * that pid keeps it. */
		if (pid && pid != me && !mpops_proc_alive(pid, hs->start_time)) {
			was[h] = pid;
			ndead++;
		}
	}
	if (!ndead)
		return 0;
	if ((rc = scan_init(&s, sh)) < 0)
		return rc;
	if ((rc = pool_lock(sh)) < 0) {
		scan_fini(&s);
		return rc;
	}
	/* Another call may have given them back meanwhile, and the records
	 * been taken again: only what still names the gone process. */
	for (uint32_t h = 0; h < sh->max_handles; h++)
		dead[h] = was[h] && atomic_load(&pool_handle(sh, h)->pid) == was[h];
	rc = reclaim_locked(&s, dead, gp, &ngp);
	if (rc >= 0) {
		/* Every buffer naming them is back: the records are free. */
		for (uint32_t h = 0; h < sh->max_handles; h++) {
			struct pkt_handle_shared *hs = pool_handle(sh, h);

			if (!dead[h])
				continue;
			__atomic_store_n(&hs->len, 0, __ATOMIC_RELAXED);
			__atomic_store_n(&hs->state, HANDLE_FREE, __ATOMIC_RELAXED);
			hs->start_time = 0;
			atomic_store_explicit(&hs->pid, 0, memory_order_release);
		}
		sh->reclaims += ngp;
	}
	shlock_unlock(&pool_ring(sh)->lock);
	scan_fini(&s);
	for (unsigned k = 0; k < ngp; k++)
		if (gp[k].cached + gp[k].held)
			log_info("pktpool '%.*s': pid %d is gone: %u buffers given back (%u from its caches, %u it held)",
				 MPOPS_NAME_MAX, sh->name, (int)gp[k].pid,
				 gp[k].cached + gp[k].held, gp[k].cached, gp[k].held);
	return rc;
}

int mpops_pktpool_reclaim(struct mpops_pktpool *p)
{
	if (!p) {
		log_err("mpops_pktpool_reclaim: pool handle must not be NULL");
		return -EINVAL;
	}
	if (p->r->role != MPOPS_ROLE_PRIMARY) {
		log_err("pktpool '%.*s': only the primary gives back what gone processes held (it does so when it notices them gone)",
			MPOPS_NAME_MAX, p->sh->name);
		return -EPERM;
	}
	return pool_reclaim(p->sh);
}

void pktpool_reclaim_gone(struct mpops_region *r)
{
	struct region_hdr_shared *h = r->hdr;

	for (int i = 0; i < MPOPS_ROOTS_MAX; i++) {
		mpops_off_t off = __atomic_load_n(&h->roots[i].off, __ATOMIC_ACQUIRE);
		struct pktpool_shared *sh;

		if (!off || off < h->hdr_size || off % 64 || off > r->size - sizeof(*sh))
			continue;
		sh = mpops_ptr(r->base, off);
		if (sh->magic != PKTPOOL_MAGIC || sh->version != PKTPOOL_VERSION ||
		    sh->layout_hash != pkt_layout_hash() || pool_header_bad(r, off, sh))
			continue;
		pool_reclaim(sh);
	}
}

/* Is ring owner @o queue pair @qp's ring in direction @tx (@qp < 0: any)? */
static inline int ring_queue(uint32_t o, int qp, int tx)
{
	return qp < 0 || (!(o & OWNER_RING_ANYQ) && (o & 15u) == (uint32_t)qp &&
			  !!(o & OWNER_RING_TX) == !!tx);
}

int pktpool_recover_rings(struct mpops_pktpool *p, uint32_t port, int qp, int tx,
			  struct mpops_pkt *const *keep, unsigned nkeep)
{
	struct pktpool_shared *sh = p->sh;
	struct give g = { 0 };
	struct scan s;
	int rc;

	if ((rc = scan_init(&s, sh)) < 0)
		return rc;
	if (!(g.idx = malloc(sizeof(uint32_t) * s.count))) {
		scan_fini(&s);
		return -ENOMEM;
	}
	if ((rc = pool_lock(sh)) < 0) {
		free(g.idx);
		scan_fini(&s);
		return rc;
	}
	/* What the driver still has on the ring stays, with its segments. */
	for (unsigned k = 0; k < nkeep; k++) {
		int64_t i = keep[k] ? seg_index(&s, keep[k]) : -1;

		if (i >= 0 && s.mark[i] == MARK_NONE) {
			s.mark[i] = MARK_HELD;
			chain_mark(&s, (uint32_t)i, MARK_HELD, NULL, NULL);
		}
	}
	/* A chain whose first buffer someone holds is theirs (a received
	 * packet's later segments); the rest marked as these rings' is
	 * nobody's now. */
	segments_find(&s);
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < s.count; i++) {
			uint32_t f = flags_load(&s.meta[i]), o = owner_of(f);

			if (s.mark[i] != MARK_NONE || !(f & MPOPS_PKT_F_ALLOCATED) ||
			    (!pass && s.seg[i]))
				continue;
			if (!ring_of(o, port) || (o & OWNER_RING_KEPT) || !ring_queue(o, qp, tx)) {
				s.mark[i] = MARK_HELD;
				chain_mark(&s, i, MARK_HELD, NULL, NULL);
				continue;
			}
			s.mark[i] = MARK_TAKEN;
			give_take(&s, i, &g);
			chain_mark(&s, i, MARK_TAKEN, give_take, &g);
		}
	}
	if (g.n) {
		give_push(sh, &g);
		sh->recovered += g.n;
	}
	shlock_unlock(&pool_ring(sh)->lock);
	free(g.idx);
	scan_fini(&s);
	return (int)g.n;
}
