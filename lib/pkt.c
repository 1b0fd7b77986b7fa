/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packet buffer pool in shared memory: a ring of free buffer indices shared
 * by every process, and a cache per handle (per thread) so the fast path
 * reaches the shared ring, under a robust lock, only once per bulk refill
 * or flush.
 *
 * Whether a buffer is allocated, and who holds it, is recorded in its
 * metadata (mpops_pkt.flags: MPOPS_PKT_F_ALLOCATED and the owner, see
 * pkt_priv.h), set at alloc and checked and cleared at free with a plain
 * load and store: no locked instruction per packet, so a double free is
 * caught unless the two frees race (see "alloc" below).
 *
 * Each handle's cache is in shared memory (its record), so that the
 * primary can give a dead process's buffers back (pkt_census.c). For that
 * the stores of the fast path are ordered so that a process killed between
 * any two of them leaves each buffer findable: an allocation marks the
 * buffers taken before it shortens the cache, a free puts the buffer in
 * the cache before it clears the mark. The handle itself is process-local;
 * the shared part holds integers and offsets only.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	h = H_FIELD(h, struct pktpool_shared, handles_off);
	h = H_FIELD(h, struct pktpool_shared, reclaimed);
	h = H_STRUCT(h, struct pkt_ring_shared);
	h = H_FIELD(h, struct pkt_ring_shared, head);
	h = H_FIELD(h, struct pkt_ring_shared, size);
	h = H_FIELD(h, struct pkt_ring_shared, j_op);
	h = H_STRUCT(h, struct pkt_handle_shared);
	h = H_FIELD(h, struct pkt_handle_shared, len);
	h = fnv1a_u64(h, OWNER_RING | OWNER_PORT_SHIFT << 8 | OWNER_UNUSABLE);
	return fnv1a_u64(h, MPOPS_PKT_F_ALLOCATED);
}

/* ==== ring ============================================================== */

static inline void store_u32(uint32_t *p, uint32_t v)
{
	/* Ordered after every store before it: what a process killed right
	 * after it leaves behind is consistent (see the file's comment). */
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/*
 * The lock's holder died. Its exchange, if one was under way, either
 * published the ring's index or not: set its cache length to match. A
 * ring whose indices make no sense cannot be repaired.
 */
static int ring_repair(void *arg)
{
	struct pktpool_shared *sh = arg;
	struct pkt_ring_shared *rg = pool_ring(sh);
	uint32_t head = atomic_load(&rg->head), tail = atomic_load(&rg->tail), pos, len;
	struct pkt_handle_shared *hs;
	int done;

	if (tail - head > rg->capacity) {
		log_err("pktpool '%.*s': its free ring holds %u entries, more than its %u slots",
			MPOPS_NAME_MAX, sh->name, tail - head, rg->capacity);
		return -EIO;
	}
	if (rg->j_op == J_NONE)
		return 0;
	if (rg->j_handle >= sh->max_handles || rg->j_n > sh->cache_size ||
	    rg->j_len > sh->cache_size || (rg->j_op != J_FLUSH && rg->j_op != J_REFILL))
		return -EIO;
	hs = pool_handle(sh, rg->j_handle);
	pos = rg->j_op == J_FLUSH ? tail : head;
	if (pos == rg->j_pos + rg->j_n)
		done = 1;
	else if (pos == rg->j_pos)
		done = 0;
	else
		return -EIO;
	if (rg->j_op == J_FLUSH) {
		if (rg->j_n > rg->j_len)
			return -EIO;
		len = done ? rg->j_len - rg->j_n : rg->j_len;
	} else {
		if (rg->j_len + rg->j_n > sh->cache_size)
			return -EIO;
		len = done ? rg->j_len + rg->j_n : rg->j_len;
	}
	store_u32(&hs->len, len);
	log_warn("pktpool '%.*s': pid %d died moving %u buffers %s its cache: %s",
		 MPOPS_NAME_MAX, sh->name, (int)atomic_load(&hs->pid), rg->j_n,
		 rg->j_op == J_FLUSH ? "out of" : "into", done ? "completed" : "undone");
	store_u32(&rg->j_op, J_NONE);
	return 0;
}

int pool_lock(struct pktpool_shared *sh)
{
	return shlock_lock_repair(&pool_ring(sh)->lock, "a packet pool's free ring", ring_repair,
				  sh);
}

static void journal_begin(struct pkt_ring_shared *rg, uint32_t op, uint32_t handle, uint32_t n,
			  uint32_t len, uint32_t pos)
{
	rg->j_handle = handle;
	rg->j_n = n;
	rg->j_len = len;
	rg->j_pos = pos;
	store_u32(&rg->j_op, op);
}

/*
 * Move @n entries between @p's cache and the ring, all or nothing: J_FLUSH
 * gives the top of the cache to the ring, J_REFILL takes from the ring onto
 * the cache (the caller made room). Journaled (see struct pkt_ring_shared).
 * @return 0, -ENOSPC (flush) the ring has no room (only corrupt state or
 * concurrent double frees do that), -ENOBUFS (refill) too few in the ring,
 * -ENOTRECOVERABLE.
 */
static int ring_move(struct mpops_pktpool *p, uint32_t op, uint32_t n)
{
	struct pkt_ring_shared *rg = p->ring;
	uint32_t head, tail, len;
	int rc, flush = op == J_FLUSH;

	if ((rc = pool_lock(p->sh)) < 0)
		return rc;
	len = p->hs->len;
	head = atomic_load_explicit(&rg->head, memory_order_relaxed);
	tail = atomic_load_explicit(&rg->tail, memory_order_relaxed);
	if (flush ? n > len || n > rg->capacity - (tail - head) :
		    n > tail - head || n > p->cache_size - len) {
		shlock_unlock(&rg->lock);
		return flush ? -ENOSPC : -ENOBUFS;
	}
	journal_begin(rg, op, p->index, n, len, flush ? tail : head);
	for (uint32_t i = 0; i < n; i++) {
		if (flush)
			rg->slots[(tail + i) & rg->mask] = p->cache[len - n + i];
		else
			p->cache[len + i] = rg->slots[(head + i) & rg->mask];
	}
	test_point(flush ? "pktring.flush.copied" : "pktring.refill.copied");
	if (flush)
		atomic_store_explicit(&rg->tail, tail + n, memory_order_release);
	else
		atomic_store_explicit(&rg->head, head + n, memory_order_release);
	test_point(flush ? "pktring.flush.published" : "pktring.refill.published");
	store_u32(&p->hs->len, flush ? len - n : len + n);
	store_u32(&rg->j_op, J_NONE);
	shlock_unlock(&rg->lock);
	return 0;
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
	uint32_t handle_stride;
	uint64_t ring_rel, handles_rel, meta_rel, total;	/* the host part */
	uint64_t data_len;	/* the buffers, in the device part */
};

static void layout_compute(struct pool_layout *l, uint32_t count, uint16_t buf_size,
			   uint32_t cache_size, uint32_t max_handles)
{
	l->ring_size = pow2_at_least(count + 1);
	l->buf_stride = (uint32_t)ALIGN_UP(buf_size, 64);
	l->handle_stride = (uint32_t)ALIGN_UP(sizeof(struct pkt_handle_shared) +
					      (uint64_t)cache_size * sizeof(uint32_t), 64);
	l->ring_rel = sizeof(struct pktpool_shared);
	l->handles_rel = ALIGN_UP(l->ring_rel + sizeof(struct pkt_ring_shared) +
				  (uint64_t)l->ring_size * sizeof(uint32_t), 64);
	l->meta_rel = l->handles_rel + (uint64_t)max_handles * l->handle_stride;
	l->total = l->meta_rel + (uint64_t)count * META_SIZE;
	/* The buffers: an allocation of the device part of their own. */
	l->data_len = (uint64_t)count * l->buf_stride;
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
	if (!o->max_handles)
		o->max_handles = PKTPOOL_HANDLES_DEF;
	if (!o->data_align)
		o->data_align = 64;
	if ((o->data_align & (o->data_align - 1)) || o->data_align < 64 ||
	    o->data_align > PKTPOOL_DATA_ALIGN_MAX) {
		log_err("pktpool '%s': data_align %u must be a power of two from 64 to %u",
			name, o->data_align, PKTPOOL_DATA_ALIGN_MAX);
		return -EINVAL;
	}
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
	if (o->max_handles > PKTPOOL_HANDLES_MAX) {
		log_err("pktpool '%s': max_handles %u is more than %u: open fewer handles",
			name, o->max_handles, PKTPOOL_HANDLES_MAX);
		return -EINVAL;
	}
	return 0;
}

static void pool_init(struct mpops_region *r, mpops_off_t off, mpops_off_t data,
		      const char *name, const struct mpops_pktpool_opts *o,
		      const struct pool_layout *l)
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
	sh->data_align = o->data_align;
	sh->self_off = off;
	sh->ring_off = off + l->ring_rel;
	sh->handles_off = off + l->handles_rel;
	sh->max_handles = o->max_handles;
	sh->handle_stride = l->handle_stride;
	sh->meta_off = off + l->meta_rel;
	sh->data_off = data;
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
			meta[i].flags = flags_owned(OWNER_UNUSABLE);
			continue;
		}
		rg->slots[usable++] = i;
	}
	if (usable < o->count)
		log_info("pktpool '%s': %u of %u buffers span two hugepages that are not physically adjacent: left out",
			 name, o->count - usable, o->count);
	sh->usable = usable;
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
	struct mpops_region_dev dev;
	struct pool_layout l;
	char tag[MPOPS_NAME_MAX + 1];
	mpops_off_t off, data;
	int rc;

	if (!r || !out) {
		log_err("mpops_pktpool_create: region and out must not be NULL");
		return -EINVAL;
	}
	mpops_region_dev(r, &dev);
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
	layout_compute(&l, o.count, o.buf_size, o.cache_size, o.max_handles);
	if (l.data_len > dev.size || l.total > dev.off) {
		log_err("pktpool '%s': %u buffers of %u bytes need %llu bytes of the device part and %llu of the host part; region '%s' has %zu and %llu: create the region larger or the pool smaller",
			name, o.count, o.buf_size, (unsigned long long)l.data_len,
			(unsigned long long)l.total, r->name, dev.size, (unsigned long long)dev.off);
		return -ENOMEM;
	}
	snprintf(tag, sizeof(tag), "pktpool.%s", name);
	if ((rc = mpops_alloc(r, l.total, 64, tag, &off)) < 0)
		return rc;
	if ((rc = mpops_alloc_dev(r, l.data_len, o.data_align, tag, &data)) < 0) {
		mpops_free(r, off);
		return rc;
	}
	pool_init(r, off, data, name, &o, &l);
	/* Another process may have taken the name meanwhile: root_set says. */
	if ((rc = mpops_root_set(r, name, off)) < 0) {
		mpops_free(r, data);
		mpops_free(r, off);
		return rc;
	}
	*out = off;
	return 0;
}

/* The header came from shared memory: check it before trusting offsets. */
const char *pool_header_bad(struct mpops_region *r, mpops_off_t pool,
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
	if (sh->max_handles == 0 || sh->max_handles > PKTPOOL_HANDLES_MAX)
		return "max_handles out of range";
	if (sh->data_align < 64 || sh->data_align > PKTPOOL_DATA_ALIGN_MAX ||
	    (sh->data_align & (sh->data_align - 1)))
		return "data_align out of range";
	layout_compute(&l, sh->count, sh->buf_size, sh->cache_size, sh->max_handles);
	if (sh->buf_stride != l.buf_stride || sh->total_size != l.total ||
	    sh->handle_stride != l.handle_stride || sh->ring_off != pool + l.ring_rel ||
	    sh->handles_off != pool + l.handles_rel || sh->meta_off != pool + l.meta_rel)
		return "part offsets do not match its sizes";
	if (l.total > r->dev_off || pool > r->dev_off - l.total)
		return "extends past the region's host part";
	if (sh->data_off < r->dev_off || sh->data_off % sh->data_align ||
	    l.data_len > r->dev_size || sh->data_off - r->dev_off > r->dev_size - l.data_len)
		return "its buffers are not inside the region's device part";
	rg = (const struct pkt_ring_shared *)((char *)r->base + sh->ring_off);
	if (rg->size != l.ring_size || rg->mask != l.ring_size - 1 ||
	    rg->capacity != l.ring_size - 1)
		return "ring size";
	return NULL;
}

struct pktpool_shared *pool_header(struct mpops_region *r, mpops_off_t pool, int *rc)
{
	struct pktpool_shared *sh;
	const char *bad;

	*rc = -EINVAL;
	if (pool < r->hdr->hdr_size || pool % 64 || pool > r->size - sizeof(*sh)) {
		log_err("region '%s': offset %#llx is not a packet pool (outside the region's objects): pass what mpops_pktpool_create() or mpops_root_get() gave",
			r->name, (unsigned long long)pool);
		return NULL;
	}
	sh = (struct pktpool_shared *)((char *)r->base + pool);
	if (sh->magic != PKTPOOL_MAGIC) {
		log_err("region '%s': offset %#llx is not a packet pool (magic %#llx): pass what mpops_pktpool_create() or mpops_root_get() gave",
			r->name, (unsigned long long)pool, (unsigned long long)sh->magic);
		return NULL;
	}
	atomic_thread_fence(memory_order_acquire);
	if (sh->version != PKTPOOL_VERSION || sh->layout_hash != pkt_layout_hash()) {
		log_err("pktpool '%.*s': made with pool version %u, layout %#llx; this process has version %u, layout %#llx: rebuild both from the same mpops version",
			MPOPS_NAME_MAX, sh->name, sh->version, (unsigned long long)sh->layout_hash,
			PKTPOOL_VERSION, (unsigned long long)pkt_layout_hash());
		*rc = -EPROTO;
		return NULL;
	}
	if ((bad = pool_header_bad(r, pool, sh))) {
		log_err("pktpool '%.*s' at %#llx has a corrupt header (%s): recreate the region",
			MPOPS_NAME_MAX, sh->name, (unsigned long long)pool, bad);
		return NULL;
	}
	*rc = 0;
	return sh;
}

/*
 * A handle record for this process: one of its own closed ones (its
 * buffers keep their owner), else a free one. @return the index, or -1.
 */
static int handle_take(struct pktpool_shared *sh, int32_t me, uint64_t start)
{
	for (uint32_t i = 0; i < sh->max_handles; i++) {
		struct pkt_handle_shared *hs = pool_handle(sh, i);
		uint32_t closed = HANDLE_CLOSED;

		if (atomic_load(&hs->pid) == me && hs->start_time == start &&
		    __atomic_compare_exchange_n(&hs->state, &closed, HANDLE_OPEN, 0,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return (int)i;
	}
	for (uint32_t i = 0; i < sh->max_handles; i++) {
		struct pkt_handle_shared *hs = pool_handle(sh, i);
		int32_t none = 0;

		if (atomic_compare_exchange_strong(&hs->pid, &none, me)) {
			hs->start_time = start;
			store_u32(&hs->len, 0);
			store_u32(&hs->state, HANDLE_OPEN);
			return (int)i;
		}
	}
	return -1;
}

int mpops_pktpool_open(struct mpops_region *r, mpops_off_t pool,
		       struct mpops_pktpool **out)
{
	struct pktpool_shared *sh;
	struct mpops_pktpool *p;
	int32_t me = getpid();
	uint64_t start;
	int rc, i;

	if (!r || !out) {
		log_err("mpops_pktpool_open: region and out must not be NULL");
		return -EINVAL;
	}
	*out = NULL;
	if ((rc = region_writable(r, "mpops_pktpool_open")) < 0)
		return rc;
	if (!(sh = pool_header(r, pool, &rc)))
		return rc;
	if (!(p = calloc(1, sizeof(*p)))) {
		log_err("pktpool '%.*s': out of memory for a handle", MPOPS_NAME_MAX, sh->name);
		return -ENOMEM;
	}
	start = mpops_proc_start_time(me);
	i = handle_take(sh, me, start);
	if (i < 0 && r->role == MPOPS_ROLE_PRIMARY && pool_reclaim(sh) > 0)
		i = handle_take(sh, me, start);
	if (i < 0) {
		log_err("pktpool '%.*s': all %u handle records are taken (open handles, and those of processes gone that the primary has not noticed yet): close handles or create the pool with a larger max_handles",
			MPOPS_NAME_MAX, sh->name, sh->max_handles);
		free(p);
		return -ENOSPC;
	}
	p->r = r;
	p->base = r->base;
	p->sh = sh;
	p->ring = pool_ring(sh);
	p->meta = pool_meta(sh);
	p->hs = pool_handle(sh, (uint32_t)i);
	p->cache = p->hs->cache;
	p->index = (uint32_t)i;
	p->own = p->cur = flags_owned((uint32_t)i + 1);
	p->pool_off = pool;
	p->count = sh->count;
	p->headroom = sh->headroom;
	p->cache_size = sh->cache_size;
	*out = p;
	return 0;
}

/* ==== cache ============================================================= */

/*
 * The ALLOCATED flag, and the owner beside it, are read and written by the
 * handle that holds the buffer at that moment, with plain (relaxed or
 * release atomic) loads and stores: no locked instruction per packet. The
 * flag still travels with the buffer between processes, ordered by the
 * ring's lock, so a double free is caught when the frees are not
 * concurrent. Two frees that race may both see the flag set; the buffer
 * then sits twice in the free set, and pkt_take() catches the second copy
 * if it is taken while the first is allocated.
 */
static inline uint32_t flags_get(const struct mpops_pkt *m)
{
	return __atomic_load_n(&m->flags, __ATOMIC_RELAXED);
}

static inline void flags_set(struct mpops_pkt *m, uint32_t v)
{
	__atomic_store_n(&m->flags, v, __ATOMIC_RELAXED);
}

static inline uint32_t cache_len(const struct mpops_pktpool *p)
{
	return __atomic_load_n(&p->hs->len, __ATOMIC_RELAXED);
}

/* Give the top @n entries of the cache to the ring. */
static void cache_flush(struct mpops_pktpool *p, uint32_t n)
{
	int rc = ring_move(p, J_FLUSH, n);

	if (rc == 0)
		return;
	/* The ring has a slot for every buffer: a full one takes overwritten
	 * shared state, or concurrent double frees that left more copies than
	 * it has spare slots; a lock that is not recoverable leaves nowhere to
	 * put them either. */
	log_err("pktpool '%.*s': %u free buffers cannot go back to its ring (%s): they are lost (counted); recreate the region",
		MPOPS_NAME_MAX, p->sh->name, n,
		rc == -ENOSPC ? "the ring is full: corrupt pool state" : strerror(-rc));
	__atomic_fetch_add(&p->sh->lost, n, __ATOMIC_RELAXED);
	store_u32(&p->hs->len, cache_len(p) - n);
}

/*
 * Free @m into a cache with room for it: its index onto the cache, then
 * the flag cleared. Killed in between, the process leaves a cached buffer
 * still marked allocated, which the primary gives back once (see
 * pkt_census.c), never one that is nowhere.
 */
static inline void cache_push_room(struct mpops_pktpool *p, struct mpops_pkt *m)
{
	uint32_t len = cache_len(p);

	p->cache[len] = m->index;
	__atomic_store_n(&p->hs->len, len + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&m->flags, 0, __ATOMIC_RELEASE);
}

static inline void cache_push(struct mpops_pktpool *p, struct mpops_pkt *m)
{
	if (cache_len(p) == p->cache_size)
		cache_flush(p, p->cache_size - p->cache_size / 2);
	cache_push_room(p, m);
}

void mpops_pktpool_close(struct mpops_pktpool *p)
{
	if (!p)
		return;
	if (cache_len(p))
		cache_flush(p, cache_len(p));
	/* The record stays this process's: the buffers it still holds name it. */
	store_u32(&p->hs->state, HANDLE_CLOSED);
	free(p);
}

/* ==== alloc ============================================================= */

/* Reset buffer @m for its new holder (flags @cur); 0 if it is allocated
 * already (a copy left by a concurrent double free, see above). */
static inline int pkt_reset(struct mpops_pkt *m, uint16_t headroom, uint32_t cur)
{
	if (flags_get(m) & MPOPS_PKT_F_ALLOCATED)
		return 0;
	m->next = 0;
	m->pkt_len = 0;
	m->data_off = headroom;
	m->data_len = 0;
	m->nb_segs = 1;
	m->port = 0;
	m->queue = 0;
	m->udata = 0;
	flags_set(m, cur);
	return 1;
}

static inline struct mpops_pkt *pkt_take(struct mpops_pktpool *p, uint32_t idx)
{
	struct mpops_pkt *m = &p->meta[idx];

	return pkt_reset(m, p->headroom, p->cur) ? m : NULL;
}

static void dup_log(struct mpops_pktpool *p, uint32_t idx)
{
	log_err("pktpool '%.*s': buffer %u was in the free set while allocated (left there by a concurrent double free): that copy dropped; fix the double free",
		MPOPS_NAME_MAX, p->sh->name, idx);
}

static int alloc_fail(struct mpops_pktpool *p, unsigned n, int rc)
{
	if (rc != -ENOBUFS)
		return rc;	/* the lock said why */
	if (!p->empty_logged) {
		p->empty_logged = 1;
		log_err("pktpool '%.*s': no %u free buffers (ring %u, this handle's cache %u): create the pool with a larger count or free buffers sooner (logged once per handle)",
			MPOPS_NAME_MAX, p->sh->name, n, ring_count(p->ring), cache_len(p));
	}
	return -ENOBUFS;
}

/* Bring the cache up to at least @n (<= cache_size) entries.
 * @return 0, -ENOBUFS, -ENOTRECOVERABLE. */
static int cache_refill(struct mpops_pktpool *p, unsigned n)
{
	unsigned half = p->cache_size - p->cache_size / 2;
	unsigned target = n > half ? n : half, len = cache_len(p);
	int rc;

	/* Take a half-full cache's worth, so the next frees do not flush at
	 * once; failing that, just what is needed. */
	if ((rc = ring_move(p, J_REFILL, target - len)) != -ENOBUFS || target == n)
		return rc;
	return ring_move(p, J_REFILL, n - len);
}

/* Give @n just-taken buffers back to the cache (an allocation failed). */
static void alloc_undo(struct mpops_pktpool *p, struct mpops_pkt **pkts, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cache_push(p, pkts[i]);
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
		uint32_t idx, len = cache_len(p);
		int rc;

		if (len == 0) {
			if ((rc = cache_refill(p, 1)) < 0) {
				alloc_undo(p, pkts, got);
				return alloc_fail(p, n, rc);
			}
			len = cache_len(p);
		}
		idx = p->cache[len - 1];
		/* Marked taken before the cache is shorter (see cache_push_room). */
		pkts[got] = pkt_take(p, idx);
		store_u32(&p->hs->len, len - 1);
		if (pkts[got])
			got++;
		else
			dup_log(p, idx);
	}
	return 0;
}

int mpops_pkt_alloc_bulk(struct mpops_pktpool *p, struct mpops_pkt **pkts, unsigned n)
{
	uint32_t len;
	int rc;

	if (!p || (!pkts && n)) {
		log_err("mpops_pkt_alloc_bulk: pool handle and pkts must not be NULL");
		return -EINVAL;
	}
	len = cache_len(p);
	if (n > len) {
		/* All or nothing: check there are n before taking any. */
		if (n > p->cache_size) {
			if (n - len > ring_count(p->ring))
				return alloc_fail(p, n, -ENOBUFS);
			return alloc_slow(p, pkts, 0, n);
		}
		if ((rc = cache_refill(p, n)) < 0)
			return alloc_fail(p, n, rc);
		len = cache_len(p);
	}
	{
		/* In locals: the stores below could alias the handle's fields. */
		struct mpops_pkt *meta = p->meta;
		const uint32_t *cache = p->cache + len - 1, cur = p->cur;
		const uint16_t headroom = p->headroom;

		for (unsigned i = 0; i < n; i++) {
			uint32_t idx = *(cache - i);

			pkts[i] = &meta[idx];
			if (!pkt_reset(pkts[i], headroom, cur)) {
				/* The taken ones and the copy off the cache. */
				store_u32(&p->hs->len, len - 1 - i);
				dup_log(p, idx);
				return alloc_slow(p, pkts, i, n);
			}
		}
	}
	/* Marked taken before the cache is shorter (see cache_push_room). */
	store_u32(&p->hs->len, len - n);
	return 0;
}

int mpops_pkt_alloc_bulk_mark(struct mpops_pktpool *p, struct mpops_pkt **pkts, unsigned n,
			      uint32_t mark)
{
	uint32_t cur;
	int rc;

	if (!mark || !p)
		return mpops_pkt_alloc_bulk(p, pkts, n);
	/* The handle's mark for this call (alloc_slow reads it too). */
	cur = p->cur;
	p->cur = mark;
	rc = mpops_pkt_alloc_bulk(p, pkts, n);
	p->cur = cur;
	return rc;
}

struct mpops_pkt *mpops_pkt_alloc(struct mpops_pktpool *p)
{
	struct mpops_pkt *m;

	return mpops_pkt_alloc_bulk(p, &m, 1) == 0 ? m : NULL;
}

/* ==== free ============================================================== */

/* Index of @m if it is a metadata slot of the pool whose metadata array
 * is at @meta (@count buffers, header at @pool) and says so, else -1. */
static inline int64_t seg_index_in(const struct mpops_pkt *meta, uint32_t count, mpops_off_t pool,
				   const struct mpops_pkt *m)
{
	uint64_t rel = (uint64_t)((uintptr_t)m - (uintptr_t)meta);

	if (rel >= (uint64_t)count * META_SIZE || rel % META_SIZE)
		return -1;
	if (m->index != rel / META_SIZE || m->pool != pool)
		return -1;
	return (int64_t)(rel / META_SIZE);
}

static inline int64_t seg_index(const struct mpops_pktpool *p, const struct mpops_pkt *m)
{
	return seg_index_in(p->meta, p->count, p->pool_off, m);
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

/*
 * A chain of more than one segment: check it all, make every segment this
 * process's (a process killed while freeing it leaves the rest of the
 * chain its own, given back when it is gone), then free each.
 */
static int chain_free(struct mpops_pktpool *p, struct mpops_pkt *pkt)
{
	struct mpops_pkt *m = pkt, *nx = NULL;
	int64_t nseg = chain_check(p, pkt);

	if (nseg < 0)
		return -EINVAL;
	for (int64_t i = 0; i < nseg; i++, m = nx) {
		seg_next(p, m, &nx);
		flags_set(m, p->own);
	}
	m = pkt;
	for (int64_t i = 0; i < nseg; i++, m = nx) {
		/* Read next before the segment can reach the ring and be reused. */
		seg_next(p, m, &nx);
		cache_push(p, m);
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
	cache_push_room(p, m);
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
	if (cache_len(p) == p->cache_size)
		cache_flush(p, p->cache_size - p->cache_size / 2);
	return pkt_free_one(p, pkt);
}

/* The general case: chains, NULL entries, bad buffers, a cache to flush. */
static __attribute__((noinline)) int free_bulk_slow(struct mpops_pktpool *p,
						    struct mpops_pkt **pkts, unsigned n)
{
	/* In locals: the stores below could alias the handle's fields. */
	const struct mpops_pkt *meta;
	uint32_t *cache, *lenp, count;
	mpops_off_t pool;
	unsigned half;
	int first = 0;

	if (!p || (!pkts && n)) {
		log_err("mpops_pkt_free_bulk: pool handle and pkts must not be NULL");
		return -EINVAL;
	}
	meta = p->meta;
	cache = p->cache;
	lenp = &p->hs->len;
	count = p->count;
	pool = p->pool_off;
	half = p->cache_size - p->cache_size / 2;
	while (n) {
		unsigned k = n < half ? n : half, i;
		uint32_t len;

		/* Room for k one-segment packets, made once: half the cache
		 * to the ring if they do not fit. */
		if (cache_len(p) + k > p->cache_size)
			cache_flush(p, half);
		len = cache_len(p);
		for (i = 0; i < k; i++) {
			struct mpops_pkt *m = pkts[i];
			int rc = 0;

			if (!m)
				continue;
			if (!m->next) {
				if (seg_index_in(meta, count, pool, m) < 0 ||
				    !(flags_get(m) & MPOPS_PKT_F_ALLOCATED)) {
					rc = seg_bad(p, m, 0);
				} else {
					/* As cache_push_room(): the entry, then the flag. */
					cache[len] = m->index;
					__atomic_store_n(lenp, ++len, __ATOMIC_RELAXED);
					__atomic_store_n(&m->flags, 0, __ATOMIC_RELEASE);
				}
			} else {
				/* A chain takes more room than it was given. */
				rc = chain_free(p, m);
				len = cache_len(p);
				if (len + (k - i - 1) > p->cache_size)
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

/*
 * The common case in few registers: one-segment packets of this pool, and
 * room in the cache for all of them. The same checks and the same stores,
 * in the same order, as free_bulk_slow(), which takes over at the first
 * packet that is anything else.
 */
int mpops_pkt_free_bulk(struct mpops_pktpool *p, struct mpops_pkt **pkts, unsigned n)
{
	if (__builtin_expect(p && pkts, 1)) {
		uint32_t *lenp = &p->hs->len;
		uint32_t len = __atomic_load_n(lenp, __ATOMIC_RELAXED);

		if (__builtin_expect(len <= p->cache_size && n <= p->cache_size - len, 1)) {
			const struct mpops_pkt *meta = p->meta;
			const uint32_t count = p->count;
			const mpops_off_t pool = p->pool_off;
			uint32_t *cache = p->cache;
			unsigned i;

			for (i = 0; i < n; i++) {
				struct mpops_pkt *m = pkts[i];

				if (__builtin_expect(!m || m->next ||
						     seg_index_in(meta, count, pool, m) < 0 ||
						     !(flags_get(m) & MPOPS_PKT_F_ALLOCATED), 0))
					break;
				cache[len] = m->index;
				__atomic_store_n(lenp, ++len, __ATOMIC_RELAXED);
				__atomic_store_n(&m->flags, 0, __ATOMIC_RELEASE);
			}
			if (__builtin_expect(i == n, 1))
				return 0;
			pkts += i;
			n -= i;
		}
	}
	return free_bulk_slow(p, pkts, n);
}

/* ==== hand-off between processes ======================================== */

/* Give every allocated buffer of @pkts the owner flags @flags. */
static int owner_set(struct mpops_pkt **pkts, unsigned n, uint32_t flags, const char *what)
{
	int first = 0;

	if (!pkts && n) {
		log_err("%s: pkts must not be NULL", what);
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++) {
		struct mpops_pkt *m = pkts[i];
		uint32_t f;

		if (!m)
			continue;
		f = flags_get(m);
		if (!(f & MPOPS_PKT_F_ALLOCATED) || owner_of(f) == OWNER_UNUSABLE) {
			log_err("%s: buffer %u is not allocated: nothing done for it", what, m->index);
			first = first ? first : -EINVAL;
			continue;
		}
		flags_set(m, flags);
	}
	return first;
}

int mpops_pkt_handoff(struct mpops_pkt **pkts, unsigned n)
{
	return owner_set(pkts, n, flags_owned(0), "mpops_pkt_handoff");
}

int mpops_pkt_adopt(struct mpops_pktpool *p, struct mpops_pkt **pkts, unsigned n)
{
	if (!p) {
		log_err("mpops_pkt_adopt: pool handle must not be NULL");
		return -EINVAL;
	}
	return owner_set(pkts, n, p->own, "mpops_pkt_adopt");
}

/* ==== queries =========================================================== */

unsigned mpops_pktpool_avail(const struct mpops_pktpool *p)
{
	return p ? ring_count(p->ring) + cache_len(p) : 0;
}

unsigned mpops_pktpool_count(const struct mpops_pktpool *p)
{
	return p ? p->count : 0;
}

void *mpops_pktpool_base(const struct mpops_pktpool *p)
{
	return p ? p->base : NULL;
}

int pktpool_holds_no_addresses(struct mpops_region *r, mpops_off_t obj, mpops_off_t off)
{
	const struct pktpool_shared *sh;

	if (obj > r->size || r->size - obj < sizeof(*sh))
		return 0;
	sh = (const struct pktpool_shared *)((char *)r->base + obj);
	if (sh->magic != PKTPOOL_MAGIC || sh->self_off != obj || pool_header_bad(r, obj, sh))
		return 0;
	return (off >= sh->ring_off && off < sh->meta_off) ||
	       (off >= sh->data_off && off - sh->data_off < (uint64_t)sh->count * sh->buf_stride);
}

int mpops_pktpool_layout(const struct mpops_pktpool *p, struct mpops_pktpool_layout *l)
{
	if (!p || !l || l->sz != sizeof(*l)) {
		log_err("mpops_pktpool_layout: a handle and a layout with sz = sizeof(struct mpops_pktpool_layout) are needed");
		return -EINVAL;
	}
	l->data_off = p->sh->data_off;
	l->meta_off = p->sh->meta_off;
	l->stride = p->sh->buf_stride;
	l->count = p->count;
	l->data_len = (uint64_t)p->count * p->sh->buf_stride;
	l->buf_size = p->sh->buf_size;
	l->headroom = p->headroom;
	l->data_align = p->sh->data_align;
	return 0;
}

struct mpops_pkt *mpops_pktpool_buf_at(const struct mpops_pktpool *p, mpops_off_t off)
{
	uint64_t rel, i;

	if (!p || off < p->sh->data_off)
		return NULL;
	rel = off - p->sh->data_off;
	i = rel / p->sh->buf_stride;
	if (i >= p->count || rel - i * p->sh->buf_stride >= p->sh->buf_size)
		return NULL;
	return &p->meta[i];
}
