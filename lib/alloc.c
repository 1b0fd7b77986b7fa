/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Allocator for shared objects: a heap of contiguous blocks after the
 * region header, each with a 64-byte header, first-fit from an
 * offset-linked free list, coalescing on free. Not for the fast path (the
 * packet pool has its own lock-free structure); protected by a robust
 * shared lock so a process dying inside it does not wedge the others.
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

static void free_unlink(struct mpops_region *r, mpops_off_t off)
{
	struct alloc_shared *a = &r->hdr->alloc;
	struct free_links *l = links(r, off);

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

	blk(r, off)->magic = BLK_FREE;
	l->prev = 0;
	l->next = a->free_head;
	if (a->free_head)
		links(r, a->free_head)->prev = off;
	a->free_head = off;
	a->free_blocks++;
}

static inline mpops_off_t heap_end(struct mpops_region *r)
{
	return r->hdr->alloc.heap_off + r->hdr->alloc.heap_size;
}

/* Split block @off so it is @size bytes; the rest becomes a free block. */
static void split(struct mpops_region *r, mpops_off_t off, uint64_t size)
{
	struct blk_shared *b = blk(r, off);
	uint64_t rest = b->size - size;
	mpops_off_t tail = off + size;

	if (rest < BLK_MIN)
		return;
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
	    size > r->size || align > r->size / 2) {
		log_err("mpops_alloc: invalid size %zu or alignment %zu (a power of two)",
			size, align);
		return -EINVAL;
	}
	if ((rc = region_writable(r, "mpops_alloc")) < 0)
		return rc;
	if (align < BLK_HDR)
		align = BLK_HDR;
	a = &r->hdr->alloc;
	shlock_lock(&a->lock);
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
		free_unlink(r, off);
		if (pay - BLK_HDR != off) {
			/* Give the gap back as a free block of its own. */
			uint64_t gap = pay - BLK_HDR - off;
			mpops_off_t nb = off + gap;

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
		b->magic = BLK_USED;
		b->req_size = size;
		memset(b->tag, 0, sizeof(b->tag));
		if (tag)
			strlcpy(b->tag, tag, sizeof(b->tag));
		memset((char *)b + BLK_HDR, 0, b->size - BLK_HDR);
		a->bytes_used += b->size;
		a->objects++;
		shlock_unlock(&a->lock);
		*out = off + BLK_HDR;
		return 0;
	}
	shlock_unlock(&a->lock);
	log_err("region '%s' is out of memory for %zu bytes (tag '%s'): create it with a larger size",
		r->name, size, tag ? tag : "");
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
	a = &r->hdr->alloc;
	shlock_lock(&a->lock);
	bo = off >= BLK_HDR ? block_of(r, off) : 0;
	if (!bo || bo + BLK_HDR != off || blk(r, bo)->magic != BLK_USED) {
		shlock_unlock(&a->lock);
		log_err("region '%s': mpops_free(%#llx): not an allocated object (double free or bad offset)",
			r->name, (unsigned long long)off);
		return -EINVAL;
	}
	b = blk(r, bo);
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
	}
	if (b->prev_size && blk(r, bo - b->prev_size)->magic == BLK_FREE) {
		mpops_off_t pv = bo - b->prev_size;

		free_unlink(r, pv);
		blk(r, pv)->size += b->size;
		memset(b, 0, BLK_HDR);
		bo = pv;
		b = blk(r, bo);
	}
	if (bo + b->size < heap_end(r))
		blk(r, bo + b->size)->prev_size = b->size;
	free_push(r, bo);
	shlock_unlock(&a->lock);
	return 0;
}

int mpops_alloc_stats(struct mpops_region *r, struct mpops_alloc_stats *st)
{
	struct alloc_shared *a;

	if (!r || !st)
		return -EINVAL;
	a = &r->hdr->alloc;
	if (!r->readonly)
		shlock_lock(&a->lock);
	st->bytes_total = a->heap_size;
	st->bytes_used = a->bytes_used;
	st->objects = a->objects;
	st->free_blocks = a->free_blocks;
	if (!r->readonly)
		shlock_unlock(&a->lock);
	return 0;
}

int mpops_alloc_find(struct mpops_region *r, mpops_off_t off, mpops_off_t *start,
		     size_t *size, char *tag)
{
	mpops_off_t bo;
	int rc = -ENOENT;

	if (!r)
		return -EINVAL;
	if (!r->readonly)
		shlock_lock(&r->hdr->alloc.lock);
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
