/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Device addresses of region memory. By default a device address is the
 * region offset: a vhost-user backend maps the region at address 0. With
 * MPOPS_REGION_F_PHYS the primary records each hugepage's physical address
 * once, in a table in the region, so every process translates an offset
 * with one load and no system call (what a uio-bound PCI device needs).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "region_priv.h"

#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_PFN_MASK ((1ULL << 55) - 1)

/* Physical address of the page mapped at @va, from /proc/self/pagemap. */
static int pagemap_pa(int fd, const void *va, uint64_t *pa)
{
	long small = sysconf(_SC_PAGESIZE);
	uint64_t vpn = (uint64_t)(uintptr_t)va / (uint64_t)small, ent;

	if (pread(fd, &ent, sizeof(ent), (off_t)(vpn * sizeof(ent))) != sizeof(ent))
		return -errno ? -errno : -EIO;
	if (!(ent & PAGEMAP_PRESENT))
		return -EFAULT;
	if ((ent & PAGEMAP_PFN_MASK) == 0)
		return -EPERM;	/* the kernel hides PFNs without CAP_SYS_ADMIN */
	*pa = (ent & PAGEMAP_PFN_MASK) * (uint64_t)small + ((uintptr_t)va % (uint64_t)small);
	return 0;
}

int region_iova_init(struct mpops_region *r, const struct mpops_region_opts *o)
{
	struct region_hdr_shared *h = r->hdr;
	struct statfs sfs;
	uint64_t page, *table;
	size_t npages;
	mpops_off_t off;
	int fd, rc = 0;

	h->iova_mode = MPOPS_IOVA_OFF;
	if (!(o->flags & MPOPS_REGION_F_PHYS))
		return 0;
	if (o->backing == MPOPS_BACKING_MEMFD) {
		log_err("region '%s': physical addresses (MPOPS_REGION_F_PHYS) need hugepage memory, which does not move: use MPOPS_BACKING_MEMFD_HUGETLB or MPOPS_BACKING_HUGETLBFS",
			r->name);
		return -EINVAL;
	}
	if (fstatfs(r->fd, &sfs) < 0)
		return -errno;
	page = (uint64_t)sfs.f_bsize;
	if (page == 0 || (page & (page - 1)) || r->dev_size % page || r->dev_off % page) {
		log_err("region '%s': page size %llu of the backing is not usable", r->name,
			(unsigned long long)page);
		return -EINVAL;
	}
	npages = r->dev_size / page;	/* only the device part has device addresses */
	if ((rc = mpops_alloc(r, npages * sizeof(uint64_t), 64, "mpops.iova", &off)) < 0)
		return rc;
	table = mpops_ptr(r->base, off);
	if ((fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		log_err("region '%s': cannot open /proc/self/pagemap for physical addresses: %s",
			r->name, strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < npages && rc == 0; i++) {
		volatile char *va = (char *)r->base + r->dev_off + i * page;

		*va = *va;	/* fault the page in: a hugepage is then pinned for good */
		rc = pagemap_pa(fd, (const void *)va, &table[i]);
	}
	close(fd);
	if (rc == -EPERM) {
		log_err("region '%s': the kernel hides physical addresses from this process: MPOPS_REGION_F_PHYS needs root (CAP_SYS_ADMIN)",
			r->name);
		return rc;
	}
	if (rc < 0) {
		log_err("region '%s': cannot read the physical address of a page: %s", r->name,
			strerror(-rc));
		return rc;
	}
	h->iova_page_shift = (uint32_t)__builtin_ctzll(page);
	h->iova_table_off = off;
	h->iova_mode = MPOPS_IOVA_PA;
	log_debug("region '%s': %zu pages of %llu KiB, first at physical %#llx", r->name, npages,
		  (unsigned long long)(page >> 10), (unsigned long long)table[0]);
	return 0;
}

enum mpops_iova_mode mpops_region_iova_mode(const struct mpops_region *r)
{
	return r && r->hdr->iova_mode == MPOPS_IOVA_PA ? MPOPS_IOVA_PA : MPOPS_IOVA_OFF;
}

size_t mpops_region_page_size(const struct mpops_region *r)
{
	if (!r)
		return 0;
	if (r->hdr->iova_mode == MPOPS_IOVA_PA)
		return (size_t)1 << r->hdr->iova_page_shift;
	return (size_t)sysconf(_SC_PAGESIZE);
}

int mpops_region_iova(const struct mpops_region *r, mpops_off_t off, size_t len, uint64_t *iova)
{
	const struct region_hdr_shared *h;
	const uint64_t *table;
	uint64_t shift, first, last;

	if (!r || !iova || off < r->dev_off || off - r->dev_off >= r->dev_size ||
	    len > r->dev_size - (off - r->dev_off))
		return -ERANGE;
	h = r->hdr;
	if (h->iova_mode != MPOPS_IOVA_PA) {
		*iova = off;
		return 0;
	}
	shift = h->iova_page_shift;
	table = mpops_ptr(r->base, h->iova_table_off);
	first = (off - r->dev_off) >> shift;
	last = (off - r->dev_off + (len ? len - 1 : 0)) >> shift;
	for (uint64_t i = first; i < last; i++)
		if (table[i + 1] != table[i] + (1ULL << shift))
			return -EFAULT;
	*iova = table[first] + ((off - r->dev_off) & ((1ULL << shift) - 1));
	return 0;
}
