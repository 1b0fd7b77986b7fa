/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packet buffer pool in shared memory: a ring of free buffer indices shared
 * by every process, and a lock-free cache per handle (per thread) so the
 * fast path reaches the shared ring, under a robust lock, only once per
 * bulk refill or flush.
 *
 * Whether a buffer is allocated is recorded in its metadata
 * (MPOPS_PKT_F_ALLOCATED), set at alloc and checked and cleared at free
 * with a plain load and store: no locked instruction per packet, so a
 * double free is caught unless the two frees race (see "alloc" below). The
 * cache and the handle are process-local; the shared part holds integers
 * and offsets only.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkt_priv.h"
#include "region_priv.h"

#define DEF_COUNT 4096u
#define DEF_BUF_SIZE 2176u
#define DEF_HEADROOM 128u
#define DEF_CACHE 256u
#define META_SIZE ((uint64_t)sizeof(struct mpops_pkt))

/* ==== layout hash ======================================================= */


uint64_t pkt_layout_hash(void)
{
	uint64_t h = fnv1a_u64(FNV_SEED, PKTPOOL_VERSION);

	h = H_STRUCT(h, struct mpops_pkt);
	h = H_FIELD(h, struct mpops_pkt, next);
	h = H_FIELD(h, struct mpops_pkt, pool);
	h = H_FIELD(h, struct mpops_pkt, pkt_len);
	h = H_FIELD(h, struct mpops_pkt, data_off);
	h = H_FIELD(h, struct mpops_pkt, nb_segs);
	h = H_FIELD(h, struct mpops_pkt, index);
	h = H_FIELD(h, struct mpops_pkt, flags);
	h = H_FIELD(h, struct mpops_pkt, udata);
	h = H_STRUCT(h, struct pktpool_shared);
	h = H_FIELD(h, struct pktpool_shared, count);
	h = H_FIELD(h, struct pktpool_shared, ring_off);
	h = H_FIELD(h, struct pktpool_shared, name);
	h = H_STRUCT(h, struct pkt_ring_shared);
	h = H_FIELD(h, struct pkt_ring_shared, head);
	h = H_FIELD(h, struct pkt_ring_shared, size);
	return fnv1a_u64(h, MPOPS_PKT_F_ALLOCATED);
}

/* ==== ring ============================================================== */

/* Give back @n indices (all or nothing). @return n, or 0 when full. */
static unsigned ring_enqueue(struct pkt_ring_shared *rg, const uint32_t *idx, unsigned n)
{
	uint32_t head, tail;

	if (n == 0)
		return 0;
	shlock_lock(&rg->lock);
	head = atomic_load_explicit(&rg->head, memory_order_relaxed);
	tail = atomic_load_explicit(&rg->tail, memory_order_relaxed);
	if (n > rg->capacity - (tail - head)) {
		shlock_unlock(&rg->lock);
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		rg->slots[(tail + i) & rg->mask] = idx[i];
	/* Published last: a holder that dies before this gave nothing back. */
	atomic_store_explicit(&rg->tail, tail + n, memory_order_release);
	shlock_unlock(&rg->lock);
	return n;
}

/* Take @n indices (all or nothing). @return n, or 0 when too few. */
static unsigned ring_dequeue(struct pkt_ring_shared *rg, uint32_t *idx, unsigned n)
{
	uint32_t head, tail;

	if (n == 0)
		return 0;
	shlock_lock(&rg->lock);
	head = atomic_load_explicit(&rg->head, memory_order_relaxed);
	tail = atomic_load_explicit(&rg->tail, memory_order_relaxed);
	if (n > tail - head) {
		shlock_unlock(&rg->lock);
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		idx[i] = rg->slots[(head + i) & rg->mask];
	/* Taken last: a holder that dies before this took nothing. */
	atomic_store_explicit(&rg->head, head + n, memory_order_release);
	shlock_unlock(&rg->lock);
	return n;
}

/* Entries in the ring; a snapshot, exact only when nobody is moving. */
static unsigned ring_count(const struct pkt_ring_shared *rg)
{
	uint32_t cons = atomic_load_explicit(&rg->head, memory_order_acquire);
	uint32_t prod = atomic_load_explicit(&rg->tail, memory_order_acquire);
	uint32_t n = prod - cons;

	return n > rg->capacity ? rg->capacity : n;
}

/* ==== create and open =================================================== */

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/* Offsets of the parts, relative to the pool header. */
struct pool_layout {
	uint32_t ring_size;
	uint32_t buf_stride;
	uint64_t ring_rel, meta_rel, data_rel, total;
};

static void layout_compute(struct pool_layout *l, uint32_t count, uint16_t buf_size)
{
	l->ring_size = pow2_at_least(count + 1);
	l->buf_stride = (uint32_t)ALIGN_UP(buf_size, 64);
	l->ring_rel = sizeof(struct pktpool_shared);
	l->meta_rel = ALIGN_UP(l->ring_rel + sizeof(struct pkt_ring_shared) +
			       (uint64_t)l->ring_size * sizeof(uint32_t), 64);
	l->data_rel = l->meta_rel + (uint64_t)count * META_SIZE;
	l->total = l->data_rel + (uint64_t)count * l->buf_stride;
}

static int opts_check(const char *name, const struct mpops_pktpool_opts *opts,
		      struct mpops_pktpool_opts *o)
{
	*o = (struct mpops_pktpool_opts){ .sz = sizeof(*o) };
	if (opts) {
		if (opts->sz == 0 || opts->sz > sizeof(*o)) {
			log_err("pktpool '%s': mpops_pktpool_opts.sz must be sizeof(struct mpops_pktpool_opts)",
				name);
			return -EINVAL;
		}
		memcpy(o, opts, opts->sz);
		o->sz = sizeof(*o);
	}
	if (!o->count)
		o->count = DEF_COUNT;
	if (!o->buf_size)
		o->buf_size = DEF_BUF_SIZE;
	if (!o->headroom)
		o->headroom = DEF_HEADROOM;
	if (!o->cache_size)
		o->cache_size = o->count < DEF_CACHE ? o->count : DEF_CACHE;
	if (o->count > PKTPOOL_COUNT_MAX) {
		log_err("pktpool '%s': count %u is more than %u buffers: use several pools",
			name, o->count, PKTPOOL_COUNT_MAX);
		return -EINVAL;
	}
	if (o->headroom >= o->buf_size) {
		log_err("pktpool '%s': headroom %u leaves no room for data in buffers of %u bytes: make buf_size larger than headroom",
			name, o->headroom, o->buf_size);
		return -EINVAL;
	}
	if (o->cache_size > o->count || o->cache_size > MPOPS_PKTPOOL_CACHE_MAX) {
		log_err("pktpool '%s': cache_size %u is more than count %u or %u: make it smaller",
			name, o->cache_size, o->count, MPOPS_PKTPOOL_CACHE_MAX);
		return -EINVAL;
	}
	return 0;
}

static void pool_init(struct mpops_region *r, mpops_off_t off, const char *name,
		      const struct mpops_pktpool_opts *o, const struct pool_layout *l)
{
	char *base = r->base;
	uint32_t usable = 0;
	struct pktpool_shared *sh = (struct pktpool_shared *)(base + off);
	struct pkt_ring_shared *rg = (struct pkt_ring_shared *)(base + off + l->ring_rel);
	struct mpops_pkt *meta = (struct mpops_pkt *)(base + off + l->meta_rel);

	/* mpops_alloc() zeroed everything. */
	sh->version = PKTPOOL_VERSION;
	sh->hdr_size = sizeof(*sh);
	sh->layout_hash = pkt_layout_hash();
	sh->count = o->count;
	sh->cache_size = o->cache_size;
	sh->buf_size = o->buf_size;
	sh->headroom = o->headroom;
	sh->buf_stride = l->buf_stride;
	sh->self_off = off;
	sh->ring_off = off + l->ring_rel;
	sh->meta_off = off + l->meta_rel;
	sh->data_off = off + l->data_rel;
	sh->total_size = l->total;
	strlcpy(sh->name, name, sizeof(sh->name));

	for (uint32_t i = 0; i < o->count; i++) {
		meta[i].buf_off = sh->data_off + (uint64_t)i * l->buf_stride;
		meta[i].buf_len = o->buf_size;
		meta[i].pool = off;
		meta[i].index = i;
		meta[i].data_off = o->headroom;
		meta[i].nb_segs = 1;
	}

	/* Every buffer starts in the ring, but one whose bytes a device could
	 * not reach in one piece (it spans two hugepages that are not
	 * physically adjacent): that one stays out for good. */
	rg->size = l->ring_size;
	rg->mask = l->ring_size - 1;
	rg->capacity = l->ring_size - 1;
	for (uint32_t i = 0; i < o->count; i++) {
		if (mpops_region_iova(r, meta[i].buf_off, meta[i].buf_len, &meta[i].buf_iova) < 0) {
			meta[i].flags = MPOPS_PKT_F_ALLOCATED;
			continue;
		}
		rg->slots[usable++] = i;
	}
	if (usable < o->count)
		log_info("pktpool '%s': %u of %u buffers span two hugepages that are not physically adjacent: left out",
			 name, o->count - usable, o->count);
	shlock_init(&rg->lock);
	atomic_store_explicit(&rg->head, 0, memory_order_relaxed);
	atomic_store_explicit(&rg->tail, usable, memory_order_relaxed);

	/* The magic last: a header with the magic is complete. */
	atomic_thread_fence(memory_order_release);
	sh->magic = PKTPOOL_MAGIC;
}

int mpops_pktpool_create(struct mpops_region *r, const char *name,
			 const struct mpops_pktpool_opts *opts, mpops_off_t *out)
{
	struct mpops_pktpool_opts o;
	struct pool_layout l;
	char tag[MPOPS_NAME_MAX + 1];
	mpops_off_t off;
	int rc;

	if (!r || !out) {
		log_err("mpops_pktpool_create: region and out must not be NULL");
		return -EINVAL;
	}
	if (!name || !*name || strlen(name) > MPOPS_NAME_MAX) {
		log_err("mpops_pktpool_create: pool name '%s' must be 1 to %d characters",
			name ? name : "(null)", MPOPS_NAME_MAX);
		return -EINVAL;
	}
	if ((rc = opts_check(name, opts, &o)) < 0)
		return rc;
	if ((rc = region_writable(r, "mpops_pktpool_create")) < 0)
		return rc;
	if (mpops_root_get(r, name, &off) == 0) {
		log_err("pktpool '%s': region '%s' already has a root of that name: pick another name or open the existing pool",
			name, r->name);
		return -EEXIST;
	}
	layout_compute(&l, o.count, o.buf_size);
	if (l.total > r->size) {
		log_err("pktpool '%s': %u buffers of %u bytes need %llu bytes, more than region '%s' has (%zu): create the region larger or the pool smaller",
			name, o.count, o.buf_size, (unsigned long long)l.total, r->name, r->size);
		return -ENOMEM;
	}
	snprintf(tag, sizeof(tag), "pktpool.%s", name);
	if ((rc = mpops_alloc(r, l.total, 64, tag, &off)) < 0)
		return rc;
	pool_init(r, off, name, &o, &l);
	/* Another process may have taken the name meanwhile: root_set says. */
	if ((rc = mpops_root_set(r, name, off)) < 0) {
		mpops_free(r, off);
		return rc;
	}
	*out = off;
	return 0;
}

/* The header came from shared memory: check it before trusting offsets. */
static const char *pool_header_bad(struct mpops_region *r, mpops_off_t pool,
				   const struct pktpool_shared *sh)
{
	struct pool_layout l;
	const struct pkt_ring_shared *rg;

	if (sh->self_off != pool)
		return "its own offset differs";
	if (sh->count == 0 || sh->count > PKTPOOL_COUNT_MAX)
		return "count out of range";
	if (sh->headroom >= sh->buf_size)
		return "headroom not below buf_size";
	if (sh->cache_size == 0 || sh->cache_size > sh->count ||
	    sh->cache_size > MPOPS_PKTPOOL_CACHE_MAX)
		return "cache_size out of range";
	layout_compute(&l, sh->count, sh->buf_size);
	if (sh->buf_stride != l.buf_stride || sh->total_size != l.total ||
	    sh->ring_off != pool + l.ring_rel || sh->meta_off != pool + l.meta_rel ||
	    sh->data_off != pool + l.data_rel)
		return "part offsets do not match its sizes";
	if (l.total > r->size - pool)
		return "extends past the region";
	rg = (const struct pkt_ring_shared *)((char *)r->base + sh->ring_off);
	if (rg->size != l.ring_size || rg->mask != l.ring_size - 1 ||
	    rg->capacity != l.ring_size - 1)
		return "ring size";
	return NULL;
}

int mpops_pktpool_open(struct mpops_region *r, mpops_off_t pool,
		       struct mpops_pktpool **out)
{
	struct pktpool_shared *sh;
	struct mpops_pktpool *p;
	const char *bad;
	int rc;

	if (!r || !out) {
		log_err("mpops_pktpool_open: region and out must not be NULL");
		return -EINVAL;
	}
	*out = NULL;
	if ((rc = region_writable(r, "mpops_pktpool_open")) < 0)
		return rc;
	if (pool < r->hdr->hdr_size || pool % 64 || pool > r->size - sizeof(*sh)) {
		log_err("region '%s': offset %#llx is not a packet pool (outside the region's objects): pass what mpops_pktpool_create() or mpops_root_get() gave",
			r->name, (unsigned long long)pool);
		return -EINVAL;
	}
	sh = (struct pktpool_shared *)((char *)r->base + pool);
	if (sh->magic != PKTPOOL_MAGIC) {
		log_err("region '%s': offset %#llx is not a packet pool (magic %#llx): pass what mpops_pktpool_create() or mpops_root_get() gave",
			r->name, (unsigned long long)pool, (unsigned long long)sh->magic);
		return -EINVAL;
	}
	atomic_thread_fence(memory_order_acquire);
	if (sh->version != PKTPOOL_VERSION || sh->layout_hash != pkt_layout_hash()) {
		log_err("pktpool '%.*s': made with pool version %u, layout %#llx; this process has version %u, layout %#llx: rebuild both from the same mpops version",
			MPOPS_NAME_MAX, sh->name, sh->version, (unsigned long long)sh->layout_hash,
			PKTPOOL_VERSION, (unsigned long long)pkt_layout_hash());
		return -EPROTO;
	}
	if ((bad = pool_header_bad(r, pool, sh))) {
		log_err("pktpool '%.*s' at %#llx has a corrupt header (%s): recreate the region",
			MPOPS_NAME_MAX, sh->name, (unsigned long long)pool, bad);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p) + (size_t)sh->cache_size * sizeof(p->cache[0]));
	if (!p) {
		log_err("pktpool '%.*s': out of memory for a handle with a cache of %u",
			MPOPS_NAME_MAX, sh->name, sh->cache_size);
		return -ENOMEM;
	}
	p->r = r;
	p->base = r->base;
	p->sh = sh;
	p->ring = (struct pkt_ring_shared *)(p->base + sh->ring_off);
	p->meta = (struct mpops_pkt *)(p->base + sh->meta_off);
	p->pool_off = pool;
	p->count = sh->count;
	p->headroom = sh->headroom;
	p->cache_size = sh->cache_size;
	*out = p;
	return 0;
}

/* ==== cache ============================================================= */

/* Give @n indices from the bottom (the coldest) of the cache to the ring. */
static void cache_flush(struct mpops_pktpool *p, uint32_t n)
{
	if (!ring_enqueue(p->ring, p->cache, n)) {
		/* The ring holds every buffer, each in one place only: this
		 * takes overwritten shared state, or concurrent double frees
		 * that left more copies than the ring has spare slots. */
		log_err("pktpool '%.*s': the ring refused %u free buffers (corrupt pool state): they are lost; recreate the region",
			MPOPS_NAME_MAX, p->sh->name, n);
	}
	memmove(p->cache, p->cache + n, (p->len - n) * sizeof(p->cache[0]));
	p->len -= n;
}

static inline void cache_put(struct mpops_pktpool *p, uint32_t idx)
{
	if (p->len == p->cache_size)
		cache_flush(p, p->cache_size - p->cache_size / 2);
	p->cache[p->len++] = idx;
}

void mpops_pktpool_close(struct mpops_pktpool *p)
{
	if (!p)
		return;
	if (p->len)
		cache_flush(p, p->len);
	free(p);
}

/* ==== alloc ============================================================= */

/*
 * The ALLOCATED flag is read and written by the handle that owns the buffer
 * at that moment, with plain (relaxed atomic) loads and stores: no locked
 * instruction per packet. The flag still travels with the buffer between
 * processes, ordered by the ring's lock, so a double free is caught when
 * the frees are not concurrent. Two frees that race may both see the flag
 * set; the buffer then sits twice in the free set, and pkt_take() catches
 * the second copy if it is taken while the first is allocated.
 */
static inline uint32_t flags_get(const struct mpops_pkt *m)
{
	return __atomic_load_n(&m->flags, __ATOMIC_RELAXED);
}

static inline void flags_set(struct mpops_pkt *m, uint32_t v)
{
	__atomic_store_n(&m->flags, v, __ATOMIC_RELAXED);
}

/* Reset the buffer at @idx for its new owner; NULL if it is allocated
 * already (a copy left by a concurrent double free, see above). */
static inline struct mpops_pkt *pkt_take(struct mpops_pktpool *p, uint32_t idx)
{
	struct mpops_pkt *m = &p->meta[idx];

	if (flags_get(m) & MPOPS_PKT_F_ALLOCATED)
		return NULL;
	m->next = 0;
	m->pkt_len = 0;
	m->data_off = p->headroom;
	m->data_len = 0;
	m->nb_segs = 1;
	m->port = 0;
	m->queue = 0;
	m->udata = 0;
	flags_set(m, MPOPS_PKT_F_ALLOCATED);
	return m;
}

static void dup_log(struct mpops_pktpool *p, uint32_t idx)
{
	log_err("pktpool '%.*s': buffer %u was in the free set while allocated (left there by a concurrent double free): that copy dropped; fix the double free",
		MPOPS_NAME_MAX, p->sh->name, idx);
}

static int alloc_fail(struct mpops_pktpool *p, unsigned n)
{
	if (!p->empty_logged) {
		p->empty_logged = 1;
		log_err("pktpool '%.*s': no %u free buffers (ring %u, this handle's cache %u): create the pool with a larger count or free buffers sooner (logged once per handle)",
			MPOPS_NAME_MAX, p->sh->name, n, ring_count(p->ring), p->len);
	}
	return -ENOBUFS;
}

/* Bring the cache up to at least @n (<= cache_size) entries. */
static int cache_refill(struct mpops_pktpool *p, unsigned n)
{
	unsigned half = p->cache_size - p->cache_size / 2;
	unsigned target = n > half ? n : half;

	/* Take a half-full cache's worth, so the next frees do not flush at
	 * once; failing that, just what is needed. */
	if (ring_dequeue(p->ring, p->cache + p->len, target - p->len)) {
		p->len = target;
		return 0;
	}
	if (target > n && ring_dequeue(p->ring, p->cache + p->len, n - p->len)) {
		p->len = n;
		return 0;
	}
	return -ENOBUFS;
}

/* Give @n just-taken buffers back to the cache (an allocation failed). */
static void alloc_undo(struct mpops_pktpool *p, struct mpops_pkt **pkts, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		flags_set(pkts[i], 0);
		cache_put(p, pkts[i]->index);
	}
}

/*
 * The slow path: more than the cache holds, or a duplicate found on the
 * fast path (@got buffers in pkts[] already). One buffer at a time,
 * refilling as needed; all or nothing.
 */
static int alloc_slow(struct mpops_pktpool *p, struct mpops_pkt **pkts, unsigned got,
		      unsigned n)
{
	while (got < n) {
		uint32_t idx;

		if (p->len == 0 && cache_refill(p, 1) < 0) {
			alloc_undo(p, pkts, got);
			return alloc_fail(p, n);
		}
		idx = p->cache[--p->len];
		if ((pkts[got] = pkt_take(p, idx)))
			got++;
		else
			dup_log(p, idx);
	}
	return 0;
}

int mpops_pkt_alloc_bulk(struct mpops_pktpool *p, struct mpops_pkt **pkts, unsigned n)
{
	if (!p || (!pkts && n)) {
		log_err("mpops_pkt_alloc_bulk: pool handle and pkts must not be NULL");
		return -EINVAL;
	}
	if (n > p->len) {
		/* All or nothing: check there are n before taking any. */
		if (n > p->cache_size) {
			if (n - p->len > ring_count(p->ring))
				return alloc_fail(p, n);
			return alloc_slow(p, pkts, 0, n);
		}
		if (cache_refill(p, n) < 0)
			return alloc_fail(p, n);
	}
	for (unsigned i = 0; i < n; i++) {
		uint32_t idx = p->cache[--p->len];

		if (!(pkts[i] = pkt_take(p, idx))) {
			dup_log(p, idx);
			return alloc_slow(p, pkts, i, n);
		}
	}
	return 0;
}

struct mpops_pkt *mpops_pkt_alloc(struct mpops_pktpool *p)
{
	struct mpops_pkt *m;

	return mpops_pkt_alloc_bulk(p, &m, 1) == 0 ? m : NULL;
}

/* ==== free ============================================================== */

/* Index of @m if it is a metadata slot of this pool that says so, else -1. */
static inline int64_t seg_index(const struct mpops_pktpool *p, const struct mpops_pkt *m)
{
	uintptr_t a = (uintptr_t)m, lo = (uintptr_t)p->meta;
	uint64_t rel = (uint64_t)(a - lo);

	if (a < lo || rel >= (uint64_t)p->count * META_SIZE || rel % META_SIZE)
		return -1;
	if (m->index != rel / META_SIZE || m->pool != p->pool_off)
		return -1;
	return (int64_t)(rel / META_SIZE);
}

/* The segment after @m: 0 and *nx (NULL at the end), or -EINVAL. */
static int seg_next(const struct mpops_pktpool *p, const struct mpops_pkt *m,
		    struct mpops_pkt **nx)
{
	mpops_off_t off = m->next;
	uint64_t rel = off - p->sh->meta_off;

	if (!off) {
		*nx = NULL;
		return 0;
	}
	if (rel >= (uint64_t)p->count * META_SIZE || rel % META_SIZE)
		return -EINVAL;
	*nx = &p->meta[rel / META_SIZE];
	return 0;
}

static int seg_bad(const struct mpops_pktpool *p, const struct mpops_pkt *m, uint32_t nseg)
{
	if (seg_index(p, m) < 0)
		log_err("pktpool '%.*s': mpops_pkt_free: segment %u (%p) of the chain is not a buffer of this pool (foreign pointer or corrupt next): nothing of the chain freed",
			MPOPS_NAME_MAX, p->sh->name, nseg, (const void *)m);
	else
		log_err("pktpool '%.*s': mpops_pkt_free: segment %u (buffer %u) of the chain is not allocated (double free): nothing of the chain freed",
			MPOPS_NAME_MAX, p->sh->name, nseg, m->index);
	return -EINVAL;
}

/* Check the whole chain before touching it. @return segments, or -EINVAL. */
static int64_t chain_check(const struct mpops_pktpool *p, const struct mpops_pkt *pkt)
{
	const struct mpops_pkt *m = pkt;
	uint32_t nseg = 0;

	for (;;) {
		struct mpops_pkt *nx;

		if (seg_index(p, m) < 0 || !(flags_get(m) & MPOPS_PKT_F_ALLOCATED))
			return seg_bad(p, m, nseg);
		nseg++;
		if (seg_next(p, m, &nx) < 0) {
			log_err("pktpool '%.*s': mpops_pkt_free: segment %u (buffer %u) has next offset %#llx outside this pool's buffers: nothing of the chain freed",
				MPOPS_NAME_MAX, p->sh->name, nseg - 1, m->index,
				(unsigned long long)m->next);
			return -EINVAL;
		}
		if (!nx)
			return nseg;
		if (nseg == p->count) {
			log_err("pktpool '%.*s': mpops_pkt_free: the chain has more segments than the pool has buffers (a next cycle): nothing of the chain freed",
				MPOPS_NAME_MAX, p->sh->name);
			return -EINVAL;
		}
		m = nx;
	}
}

/* A chain of more than one segment: check it all, then free each. */
static int chain_free(struct mpops_pktpool *p, struct mpops_pkt *pkt)
{
	struct mpops_pkt *m = pkt, *nx = NULL;
	int64_t nseg = chain_check(p, pkt);

	if (nseg < 0)
		return -EINVAL;
	for (int64_t i = 0; i < nseg; i++, m = nx) {
		/* Read next before the segment can reach the ring and be reused. */
		seg_next(p, m, &nx);
		flags_set(m, 0);
		cache_put(p, m->index);
	}
	return 0;
}

/*
 * Free one chain into a cache that has room for one more entry: the one
 * segment case inline (checks, a load and a store of the flag, the index
 * onto the cache), longer chains out of line.
 */
static inline int pkt_free_one(struct mpops_pktpool *p, struct mpops_pkt *m)
{
	if (m->next)
		return chain_free(p, m);
	if (seg_index(p, m) < 0 || !(flags_get(m) & MPOPS_PKT_F_ALLOCATED))
		return seg_bad(p, m, 0);
	flags_set(m, 0);
	p->cache[p->len++] = m->index;
	return 0;
}

int mpops_pkt_free(struct mpops_pktpool *p, struct mpops_pkt *pkt)
{
	if (!p) {
		log_err("mpops_pkt_free: pool handle must not be NULL");
		return -EINVAL;
	}
	if (!pkt)
		return 0;
	if (p->len == p->cache_size)
		cache_flush(p, p->cache_size - p->cache_size / 2);
	return pkt_free_one(p, pkt);
}

int mpops_pkt_free_bulk(struct mpops_pktpool *p, struct mpops_pkt **pkts, unsigned n)
{
	unsigned half;
	int first = 0;

	if (!p || (!pkts && n)) {
		log_err("mpops_pkt_free_bulk: pool handle and pkts must not be NULL");
		return -EINVAL;
	}
	half = p->cache_size - p->cache_size / 2;
	while (n) {
		unsigned k = n < half ? n : half, i;

		/* Room for k one-segment packets, made once: half the cache
		 * to the ring if they do not fit. */
		if (p->len + k > p->cache_size)
			cache_flush(p, half);
		for (i = 0; i < k; i++) {
			struct mpops_pkt *m = pkts[i];
			int rc;

			if (!m)
				continue;
			if (!m->next) {
				rc = pkt_free_one(p, m);
			} else {
				/* A chain takes more room than it was given. */
				rc = chain_free(p, m);
				if (p->len + (k - i - 1) > p->cache_size)
					k = i + 1;
			}
			if (rc < 0 && first == 0)
				first = rc;
		}
		pkts += k;
		n -= k;
	}
	return first;
}

/* ==== queries =========================================================== */

unsigned mpops_pktpool_avail(const struct mpops_pktpool *p)
{
	return p ? ring_count(p->ring) + p->len : 0;
}

unsigned mpops_pktpool_count(const struct mpops_pktpool *p)
{
	return p ? p->count : 0;
}

void *mpops_pktpool_base(const struct mpops_pktpool *p)
{
	return p ? p->base : NULL;
}
