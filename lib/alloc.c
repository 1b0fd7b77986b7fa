/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Allocator for shared objects: a heap of contiguous blocks after the
 * region header, each with a 64-byte header, first-fit from an
 * offset-linked free list, coalescing on free. Not for the fast path (the
 * packet pool has its own lock-free structure); protected by a robust
 * shared lock so a process dying inside it does not wedge the others.
 *
 * A call changes several headers and links one store at a time, so a
 * process killed in the middle would leave a heap nobody can walk. Each
 * call first saves what it is about to change in an undo log (the
 * allocator's fields, then each block's header and links before its first
 * write); the next locker after a death puts the saved bytes back, checks
 * the whole heap, and either goes on or, if the heap is still not sound,
 * leaves the lock not recoverable: every later call fails with
 * -ENOTRECOVERABLE instead of handing out memory twice.
 *
 * Every link is an offset from the region base, so any process can
 * allocate and free whatever address it mapped the region at.
 */
#include <errno.h>
#include <string.h>

#include "region_priv.h"

#define BLK_HDR 64u
#define BLK_MIN 128u
#define BLK_USED 0x55534544u /* "USED" */
#define BLK_FREE 0x46524545u /* "FREE" */

struct blk_shared {
	uint64_t size;		/* whole block, header included, multiple of 64 */
	uint64_t prev_size;	/* physically previous block, 0 for the first */
	uint32_t magic;
	uint32_t pad;
	uint64_t req_size;	/* bytes the caller asked for */
	char tag[MPOPS_NAME_MAX + 1];
};
_Static_assert(sizeof(struct blk_shared) == BLK_HDR, "block header layout");

/* Free-list links live in a free block's payload. */
struct free_links {
	mpops_off_t next;
	mpops_off_t prev;
};

static inline struct blk_shared *blk(struct mpops_region *r, mpops_off_t off)
{
	return (struct blk_shared *)((char *)r->base + off);
}

static inline struct free_links *links(struct mpops_region *r, mpops_off_t off)
{
	return (struct free_links *)((char *)r->base + off + BLK_HDR);
}

static inline mpops_off_t heap_end(struct mpops_region *r)
{
	return r->hdr->alloc.heap_off + r->hdr->alloc.heap_size;
}

void alloc_init(struct alloc_shared *a, mpops_off_t heap_off, uint64_t heap_size)
{
	struct blk_shared *b = (struct blk_shared *)((char *)a - offsetof(struct region_hdr_shared, alloc) + heap_off);
	struct free_links *l = (struct free_links *)((char *)b + BLK_HDR);

	shlock_init(&a->lock);
	heap_size &= ~(uint64_t)(BLK_HDR - 1);
	a->heap_off = heap_off;
	a->heap_size = heap_size;
	b->size = heap_size;
	b->prev_size = 0;
	b->magic = BLK_FREE;
	l->next = l->prev = 0;
	a->free_head = heap_off;
	a->free_blocks = 1;
}

/* ==== the undo log ====================================================== */

/* Stores into the log reach memory in program order: the compiler may not
 * move them across this (the CPU does not, for plain stores on x86; a
 * release store says so on every architecture). */
static inline void undo_publish_u32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* A call begins: save the allocator's own fields. */
static void undo_begin(struct alloc_shared *a)
{
	struct alloc_undo_shared *u = &a->undo;

	u->n = 0;
	u->free_head = a->free_head;
	u->bytes_used = a->bytes_used;
	u->objects = a->objects;
	u->free_blocks = a->free_blocks;
	undo_publish_u32(&u->active, 1);
}

/* Save block @off's header and links, before the call's first write to it. */
static void undo_save(struct mpops_region *r, mpops_off_t off)
{
	struct alloc_undo_shared *u = &r->hdr->alloc.undo;
	uint32_t n = u->n;

	if (!off)
		return;
	for (uint32_t i = 0; i < n; i++)
		if (u->e[i].off == off)
			return;
	if (n == ALLOC_UNDO_MAX) {
		/* Cannot happen: a call touches at most 9 blocks. */
		log_err("region '%s': allocator undo log full", r->name);
		return;
	}
	u->e[n].off = off;
	memcpy(u->e[n].bytes, blk(r, off), ALLOC_UNDO_BYTES);
	undo_publish_u32(&u->n, n + 1);
}

/* The call is done: nothing to undo any more. */
static void undo_end(struct alloc_shared *a)
{
	undo_publish_u32(&a->undo.active, 0);
	a->undo.n = 0;
}

/*
 * Walk the heap and the free list; @return NULL when both agree with the
 * allocator's fields, else what is wrong.
 */
static const char *heap_bad(struct mpops_region *r)
{
	struct alloc_shared *a = &r->hdr->alloc;
	mpops_off_t b = a->heap_off, end = heap_end(r), f;
	uint64_t prev = 0, used = 0;
	uint32_t objects = 0, nfree = 0, listed = 0;

	while (b < end) {
		struct blk_shared *h = blk(r, b);

		if (h->size < BLK_HDR || h->size % BLK_HDR || h->size > end - b)
			return "a block size runs off the heap";
		if (h->prev_size != prev)
			return "a block's previous size does not match";
		if (h->magic == BLK_USED) {
			used += h->size;
			objects++;
		} else if (h->magic == BLK_FREE) {
			nfree++;
		} else {
			return "a block is neither used nor free";
		}
		prev = h->size;
		b += h->size;
	}
	if (used != a->bytes_used || objects != a->objects || nfree != a->free_blocks)
		return "the counts do not match the blocks";
	prev = 0;
	for (f = a->free_head; f; f = links(r, f)->next) {
		if (f < a->heap_off || f >= end || f % BLK_HDR || blk(r, f)->magic != BLK_FREE ||
		    links(r, f)->prev != prev || ++listed > nfree)
			return "the free list is broken";
		prev = f;
	}
	return listed == nfree ? NULL : "a free block is not on the free list";
}

/* The lock's holder died: undo its call, then check the heap. */
static int alloc_repair(void *arg)
{
	struct mpops_region *r = arg;
	struct alloc_shared *a = &r->hdr->alloc;
	struct alloc_undo_shared *u = &a->undo;
	const char *bad;

	if (u->active) {
		uint32_t n = u->n < ALLOC_UNDO_MAX ? u->n : ALLOC_UNDO_MAX;

		for (uint32_t i = n; i-- > 0;) {
			mpops_off_t off = u->e[i].off;

			if (off < a->heap_off || off > heap_end(r) - ALLOC_UNDO_BYTES)
				return -EIO;
			memcpy(blk(r, off), u->e[i].bytes, ALLOC_UNDO_BYTES);
		}
		a->free_head = u->free_head;
		a->bytes_used = u->bytes_used;
		a->objects = u->objects;
		a->free_blocks = u->free_blocks;
		u->repairs++;
		undo_end(a);
		log_warn("region '%s': the allocator call of a process that died inside was undone (%u blocks put back)",
			 r->name, n);
	}
	if ((bad = heap_bad(r))) {
		log_err("region '%s': the allocator's heap is not sound after a process died inside it: %s",
			r->name, bad);
		return -EIO;
	}
	return 0;
}

static int alloc_lock(struct mpops_region *r)
{
	return shlock_lock_repair(&r->hdr->alloc.lock, "the region's allocator", alloc_repair, r);
}

/* ==== the free list ===================================================== */

static void free_unlink(struct mpops_region *r, mpops_off_t off)
{
	struct alloc_shared *a = &r->hdr->alloc;
	struct free_links *l = links(r, off);

	undo_save(r, off);
	undo_save(r, l->prev);
	undo_save(r, l->next);
	if (l->prev)
		links(r, l->prev)->next = l->next;
	else
		a->free_head = l->next;
	if (l->next)
		links(r, l->next)->prev = l->prev;
	l->next = l->prev = 0;
	a->free_blocks--;
}

static void free_push(struct mpops_region *r, mpops_off_t off)
{
	struct alloc_shared *a = &r->hdr->alloc;
	struct free_links *l = links(r, off);

	undo_save(r, off);
	undo_save(r, a->free_head);
	blk(r, off)->magic = BLK_FREE;
	l->prev = 0;
	l->next = a->free_head;
	if (a->free_head)
		links(r, a->free_head)->prev = off;
	a->free_head = off;
	a->free_blocks++;
}

/* Split block @off so it is @size bytes; the rest becomes a free block. */
static void split(struct mpops_region *r, mpops_off_t off, uint64_t size)
{
	struct blk_shared *b = blk(r, off);
	uint64_t rest = b->size - size;
	mpops_off_t tail = off + size;

	if (rest < BLK_MIN)
		return;
	undo_save(r, tail);
	if (tail + rest < heap_end(r))
		undo_save(r, tail + rest);
	b->size = size;
	blk(r, tail)->size = rest;
	blk(r, tail)->prev_size = size;
	memset(blk(r, tail)->tag, 0, sizeof(blk(r, tail)->tag));
	if (tail + rest < heap_end(r))
		blk(r, tail + rest)->prev_size = rest;
	free_push(r, tail);
}

int mpops_alloc(struct mpops_region *r, size_t size, size_t align,
		const char *tag, mpops_off_t *out)
{
	struct alloc_shared *a;
	mpops_off_t off;
	int rc;

	if (!r || !out || size == 0 || (align & (align - 1)) ||
	    size > r->dev_off || align > r->dev_off / 2) {
		log_err("mpops_alloc: invalid size %zu or alignment %zu (a power of two)",
			size, align);
		return -EINVAL;
	}
	if ((rc = region_writable(r, "mpops_alloc")) < 0)
		return rc;
	if (align < BLK_HDR)
		align = BLK_HDR;
	a = &r->hdr->alloc;
	if ((rc = alloc_lock(r)) < 0)
		return rc;
	for (off = a->free_head; off; off = links(r, off)->next) {
		struct blk_shared *b = blk(r, off);
		mpops_off_t pay = ALIGN_UP(off + BLK_HDR, align);
		uint64_t need;

		/* A gap before the aligned payload must hold a free block. */
		while (pay - BLK_HDR != off && pay - BLK_HDR - off < BLK_MIN)
			pay += align;
		need = ALIGN_UP(pay + size, BLK_HDR) - off;
		if (need > b->size)
			continue;
		undo_begin(a);
		free_unlink(r, off);
		test_point("alloc.unlinked");
		if (pay - BLK_HDR != off) {
			/* Give the gap back as a free block of its own. */
			uint64_t gap = pay - BLK_HDR - off;
			mpops_off_t nb = off + gap;

			undo_save(r, nb);
			if (off + b->size < heap_end(r))
				undo_save(r, off + b->size);
			blk(r, nb)->size = b->size - gap;
			blk(r, nb)->prev_size = gap;
			if (nb + blk(r, nb)->size < heap_end(r))
				blk(r, nb + blk(r, nb)->size)->prev_size = blk(r, nb)->size;
			b->size = gap;
			free_push(r, off);
			off = nb;
			b = blk(r, off);
			need -= gap;
		}
		split(r, off, need);
		test_point("alloc.split");
		b->magic = BLK_USED;
		b->req_size = size;
		memset(b->tag, 0, sizeof(b->tag));
		if (tag)
			strlcpy(b->tag, tag, sizeof(b->tag));
		memset((char *)b + BLK_HDR, 0, b->size - BLK_HDR);
		a->bytes_used += b->size;
		a->objects++;
		undo_end(a);
		shlock_unlock(&a->lock);
		*out = off + BLK_HDR;
		return 0;
	}
	shlock_unlock(&a->lock);
	log_err("region '%s': the host part (%llu bytes, %llu in use) has no room for %zu bytes (tag '%s'): create the region larger, or with a smaller dev_size",
		r->name, (unsigned long long)a->heap_size, (unsigned long long)a->bytes_used,
		size, tag ? tag : "");
	return -ENOMEM;
}

/* Walk the heap to find the block that contains @off; caller holds the lock. */
static mpops_off_t block_of(struct mpops_region *r, mpops_off_t off)
{
	mpops_off_t b = r->hdr->alloc.heap_off;

	while (b < heap_end(r)) {
		uint64_t sz = blk(r, b)->size;

		if (sz < BLK_HDR || sz > heap_end(r) - b)
			return 0; /* corrupt: stop rather than run off */
		if (off >= b && off < b + sz)
			return b;
		b += sz;
	}
	return 0;
}

static int devheap_free(struct mpops_region *r, mpops_off_t off);
static int devheap_find(struct mpops_region *r, mpops_off_t off, mpops_off_t *start,
			size_t *size, char *tag);
static int devheap_stats(struct mpops_region *r, struct mpops_alloc_stats *st);

static inline int in_dev(const struct mpops_region *r, mpops_off_t off)
{
	return off >= r->dev_off && off - r->dev_off < r->dev_size;
}

int mpops_free(struct mpops_region *r, mpops_off_t off)
{
	struct alloc_shared *a;
	struct blk_shared *b;
	mpops_off_t bo;
	int rc;

	if (!r)
		return -EINVAL;
	if ((rc = region_writable(r, "mpops_free")) < 0)
		return rc;
	if (in_dev(r, off))
		return devheap_free(r, off);
	a = &r->hdr->alloc;
	if ((rc = alloc_lock(r)) < 0)
		return rc;
	bo = off >= BLK_HDR ? block_of(r, off) : 0;
	if (!bo || bo + BLK_HDR != off || blk(r, bo)->magic != BLK_USED) {
		shlock_unlock(&a->lock);
		log_err("region '%s': mpops_free(%#llx): not an allocated object (double free or bad offset)",
			r->name, (unsigned long long)off);
		return -EINVAL;
	}
	b = blk(r, bo);
	undo_begin(a);
	undo_save(r, bo);
	if (bo + b->size < heap_end(r))
		undo_save(r, bo + b->size);
	if (b->prev_size)
		undo_save(r, bo - b->prev_size);
	a->bytes_used -= b->size;
	a->objects--;
	memset((char *)b + BLK_HDR, 0, b->size - BLK_HDR);
	memset(b->tag, 0, sizeof(b->tag));
	b->req_size = 0;

	/* Coalesce with the next block, then with the previous one. */
	if (bo + b->size < heap_end(r) && blk(r, bo + b->size)->magic == BLK_FREE) {
		mpops_off_t nx = bo + b->size;

		free_unlink(r, nx);
		b->size += blk(r, nx)->size;
		memset(blk(r, nx), 0, BLK_HDR + sizeof(struct free_links));
		test_point("free.merged_next");
	}
	if (b->prev_size && blk(r, bo - b->prev_size)->magic == BLK_FREE) {
		mpops_off_t pv = bo - b->prev_size;

		free_unlink(r, pv);
		blk(r, pv)->size += b->size;
		memset(b, 0, BLK_HDR);
		bo = pv;
		b = blk(r, bo);
	}
	if (bo + b->size < heap_end(r)) {
		undo_save(r, bo + b->size);
		blk(r, bo + b->size)->prev_size = b->size;
	}
	free_push(r, bo);
	test_point("free.pushed");
	undo_end(a);
	shlock_unlock(&a->lock);
	return 0;
}

int mpops_alloc_stats(struct mpops_region *r, struct mpops_alloc_stats *st)
{
	struct alloc_shared *a;
	int rc;

	if (!r || !st)
		return -EINVAL;
	a = &r->hdr->alloc;
	if (!r->readonly && (rc = alloc_lock(r)) < 0)
		return rc;
	st->bytes_total = a->heap_size;
	st->bytes_used = a->bytes_used;
	st->objects = a->objects;
	st->free_blocks = a->free_blocks;
	if (!r->readonly)
		shlock_unlock(&a->lock);
	return devheap_stats(r, st);
}

int mpops_alloc_find(struct mpops_region *r, mpops_off_t off, mpops_off_t *start,
		     size_t *size, char *tag)
{
	mpops_off_t bo;
	int rc = -ENOENT, lk;

	if (!r)
		return -EINVAL;
	if (in_dev(r, off))
		return devheap_find(r, off, start, size, tag);
	if (!r->readonly && (lk = alloc_lock(r)) < 0)
		return lk;
	bo = block_of(r, off);
	if (bo && off >= bo + BLK_HDR && blk(r, bo)->magic == BLK_USED) {
		if (start)
			*start = bo + BLK_HDR;
		if (size)
			*size = blk(r, bo)->req_size;
		if (tag)
			strlcpy(tag, blk(r, bo)->tag, MPOPS_NAME_MAX + 1);
		rc = 0;
	}
	if (!r->readonly)
		shlock_unlock(&r->hdr->alloc.lock);
	return rc;
}

/* ==== the device part =================================================== */

/*
 * Memory a device is given (rings, packet buffers) comes from the device
 * part. Its bookkeeping is the extent table of struct devheap_shared, in the
 * host part: nothing a device writes is ever read back as a size or a
 * link. A call copies the table aside first (the undo copy); the next
 * locker after a death inside copies it back.
 */

static struct devheap_shared *devheap(struct mpops_region *r)
{
	return mpops_ptr(r->base, r->hdr->devheap_off);
}

int devheap_init(struct mpops_region *r)
{
	struct devheap_shared *d;
	mpops_off_t off;
	int rc;

	if ((rc = mpops_alloc(r, sizeof(*d), 64, "mpops.devheap", &off)) < 0)
		return rc;
	d = mpops_ptr(r->base, off);
	if ((rc = shlock_init(&d->lock)) < 0)
		return rc;
	d->off = r->dev_off;
	d->size = r->dev_size;
	d->t.n = 1;
	d->t.e[0].off = r->dev_off;
	d->t.e[0].size = r->dev_size;
	r->hdr->devheap_off = off;
	return 0;
}

/* Walk the table; @return NULL when it covers the part in order, else what is wrong. */
static const char *devheap_bad(const struct devheap_shared *d)
{
	const struct devheap_table *t = &d->t;
	mpops_off_t at = d->off;
	uint64_t used = 0;
	uint32_t objects = 0;

	if (t->n == 0 || t->n > DEVHEAP_MAX)
		return "its extent count is out of range";
	for (uint32_t i = 0; i < t->n; i++) {
		const struct devblk_shared *e = &t->e[i];

		if (e->off != at || e->size == 0 || e->size > d->off + d->size - at)
			return "its extents do not cover the device part in order";
		if (e->used) {
			used += e->size;
			objects++;
		}
		at += e->size;
	}
	if (at != d->off + d->size)
		return "its extents end before the device part does";
	if (used != t->bytes_used || objects != t->objects)
		return "the counts do not match the extents";
	return NULL;
}

static int devheap_repair(void *arg)
{
	struct mpops_region *r = arg;
	struct devheap_shared *d = devheap(r);
	const char *bad;

	if (d->active) {
		d->t = d->undo;
		d->repairs++;
		d->active = 0;
		log_warn("region '%s': the device-part allocator call of a process that died inside was undone",
			 r->name);
	}
	if ((bad = devheap_bad(d))) {
		log_err("region '%s': the device part's allocator table is not sound after a process died inside it: %s",
			r->name, bad);
		return -EIO;
	}
	return 0;
}

static int devheap_lock(struct mpops_region *r)
{
	return shlock_lock_repair(&devheap(r)->lock, "the region's device-part allocator",
				  devheap_repair, r);
}

static void devheap_begin(struct devheap_shared *d)
{
	d->undo = d->t;
	undo_publish_u32(&d->active, 1);
}

static void devheap_end(struct devheap_shared *d)
{
	undo_publish_u32(&d->active, 0);
}

/* Make room for @k more extents after index @i. */
static void devheap_open(struct devheap_table *t, uint32_t i, uint32_t k)
{
	memmove(&t->e[i + 1 + k], &t->e[i + 1], (t->n - i - 1) * sizeof(t->e[0]));
	t->n += k;
}

static void devheap_close(struct devheap_table *t, uint32_t i)
{
	memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof(t->e[0]));
	t->n--;
	memset(&t->e[t->n], 0, sizeof(t->e[0]));
}

int mpops_alloc_dev(struct mpops_region *r, size_t size, size_t align,
		    const char *tag, mpops_off_t *out)
{
	struct devheap_shared *d;
	struct devheap_table *t;
	int rc;

	if (!r || !out || size == 0 || (align & (align - 1)) ||
	    size > r->dev_size || align > r->dev_size) {
		log_err("mpops_alloc_dev: invalid size %zu or alignment %zu (a power of two)",
			size, align);
		return -EINVAL;
	}
	if ((rc = region_writable(r, "mpops_alloc_dev")) < 0)
		return rc;
	if (align < 64)
		align = 64;
	size = ALIGN_UP(size, 64);
	d = devheap(r);
	t = &d->t;
	if ((rc = devheap_lock(r)) < 0)
		return rc;
	for (uint32_t i = 0; i < t->n; i++) {
		struct devblk_shared *e = &t->e[i];
		mpops_off_t pay = ALIGN_UP(e->off, align);
		uint64_t gap = pay - e->off, rest;
		uint32_t extra;

		if (e->used || gap > e->size || size > e->size - gap)
			continue;
		rest = e->size - gap - size;
		extra = (gap != 0) + (rest != 0);
		if (t->n + extra > DEVHEAP_MAX) {
			shlock_unlock(&d->lock);
			log_err("region '%s': the device part's table is full (%u extents) for '%s': allocate fewer, larger device objects",
				r->name, DEVHEAP_MAX, tag ? tag : "");
			return -ENOSPC;
		}
		devheap_begin(d);
		test_point("devalloc.saved");
		devheap_open(t, i, extra);
		e = &t->e[i];
		if (gap) {
			e->size = gap;
			e++;
		}
		*e = (struct devblk_shared){ .off = pay, .size = size, .req_size = size, .used = 1 };
		if (tag)
			strlcpy(e->tag, tag, sizeof(e->tag));
		if (rest)
			e[1] = (struct devblk_shared){ .off = pay + size, .size = rest };
		t->bytes_used += size;
		t->objects++;
		test_point("devalloc.split");
		devheap_end(d);
		shlock_unlock(&d->lock);
		/* A device may have written here since the last free. */
		memset((char *)r->base + pay, 0, size);
		*out = pay;
		return 0;
	}
	shlock_unlock(&d->lock);
	log_err("region '%s': the device part (%zu bytes, %llu in use) has no room for %zu bytes (tag '%s'): create the region with a larger dev_size",
		r->name, r->dev_size, (unsigned long long)t->bytes_used, size, tag ? tag : "");
	return -ENOMEM;
}

static int devheap_free(struct mpops_region *r, mpops_off_t off)
{
	struct devheap_shared *d = devheap(r);
	struct devheap_table *t = &d->t;
	uint32_t i;
	int rc;

	if ((rc = devheap_lock(r)) < 0)
		return rc;
	for (i = 0; i < t->n && t->e[i].off != off; i++)
		;
	if (i == t->n || !t->e[i].used) {
		shlock_unlock(&d->lock);
		log_err("region '%s': mpops_free(%#llx): not an allocated object of the device part (double free or bad offset)",
			r->name, (unsigned long long)off);
		return -EINVAL;
	}
	devheap_begin(d);
	t->bytes_used -= t->e[i].size;
	t->objects--;
	t->e[i].used = 0;
	t->e[i].req_size = 0;
	memset(t->e[i].tag, 0, sizeof(t->e[i].tag));
	if (i + 1 < t->n && !t->e[i + 1].used) {
		t->e[i].size += t->e[i + 1].size;
		devheap_close(t, i + 1);
	}
	if (i > 0 && !t->e[i - 1].used) {
		t->e[i - 1].size += t->e[i].size;
		devheap_close(t, i);
	}
	test_point("devfree.merged");
	devheap_end(d);
	shlock_unlock(&d->lock);
	return 0;
}

static int devheap_find(struct mpops_region *r, mpops_off_t off, mpops_off_t *start,
			size_t *size, char *tag)
{
	struct devheap_shared *d = devheap(r);
	const struct devheap_table *t = &d->t;
	int rc = -ENOENT, lk;

	if (!r->readonly && (lk = devheap_lock(r)) < 0)
		return lk;
	for (uint32_t i = 0; i < t->n && i < DEVHEAP_MAX; i++) {
		const struct devblk_shared *e = &t->e[i];

		if (off < e->off || off - e->off >= e->size)
			continue;
		if (e->used) {
			if (start)
				*start = e->off;
			if (size)
				*size = e->req_size;
			if (tag)
				strlcpy(tag, e->tag, MPOPS_NAME_MAX + 1);
			rc = 0;
		}
		break;
	}
	if (!r->readonly)
		shlock_unlock(&d->lock);
	return rc;
}

static int devheap_stats(struct mpops_region *r, struct mpops_alloc_stats *st)
{
	struct devheap_shared *d = devheap(r);
	int rc;

	if (!r->readonly && (rc = devheap_lock(r)) < 0)
		return rc;
	st->dev_bytes_total = d->size;
	st->dev_bytes_used = d->t.bytes_used;
	st->dev_objects = d->t.objects;
	if (!r->readonly)
		shlock_unlock(&d->lock);
	return 0;
}
