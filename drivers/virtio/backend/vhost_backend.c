/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-vhost, the control path: the Unix socket, the vhost-user messages
 * and what they set up (memory table, rings, notification fds).
 *
 * Everything that arrives is checked before use; a bad message is logged,
 * counted in st.errors and answered with a failure (when the frontend asked
 * for an answer), and the connection goes on. Only what leaves the stream
 * out of step (an oversized message, a short read) or a protocol version we
 * do not speak drops the connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "vhost_backend.h"

/* A frontend that starts a message must finish it within this time. */
#define VB_MSG_TIMEOUT_S 2
/*
 * The most fds Linux passes with one message (SCM_MAX_FD). We take them
 * all, so that we can say how many came and close every one.
 */
#define VB_RECV_FDS_MAX 253

/*
 * A message as received. struct vhost_user_msg is packed (its payload sits
 * at offset 12 on the wire), so we keep the header and an aligned copy of
 * the payload apart and never take the address of a packed member.
 */
union vb_payload {
	uint64_t u64;
	struct vhost_user_vring_state state;
	struct vhost_user_vring_addr addr;
	struct vhost_user_memory memory;
	uint8_t raw[sizeof(((struct vhost_user_msg *)0)->payload)];
};

struct vb_msg {
	struct vhost_user_hdr hdr;
	union vb_payload p;
	int fds[VHOST_USER_MEMORY_MAX_NREGIONS];
	unsigned nfds;		/* in fds[] */
	unsigned nfds_sent;	/* attached; those past fds[] are closed at once */
	bool fds_truncated;	/* the kernel dropped some: more than nfds_sent came */
};

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

void vb_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line so lines from concurrent writers do not mix. */
	fprintf(stderr, "mpops-vhost: %s\n", line);
}

void vb_err(struct vb_dev *dev, const char *fmt, ...)
{
	char line[480];
	va_list ap;

	dev->st.errors++;
	if (dev->err_logged > VB_ERR_LOG_LIMIT)
		return;
	if (dev->err_logged++ == VB_ERR_LOG_LIMIT) {
		vb_log("error: more errors on this connection are counted, not logged");
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	vb_log("error: %s", line);
}

/* ------------------------------------------------------------------ */
/* Address translation                                                 */
/* ------------------------------------------------------------------ */

void *vb_gpa_to_host(struct vb_dev *dev, uint64_t gpa, uint64_t len)
{
	const struct vb_region *r = &dev->regions[dev->last_region];
	uint64_t off;

	/* Most buffers sit in the region of the previous one. */
	if (dev->last_region < dev->nregions) {
		off = gpa - r->gpa;
		if (gpa >= r->gpa && off < r->size && len <= r->size - off)
			return r->host + off;
	}
	for (unsigned i = 0; i < dev->nregions; i++) {
		r = &dev->regions[i];
		off = gpa - r->gpa;
		if (gpa >= r->gpa && off < r->size && len <= r->size - off) {
			dev->last_region = i;
			return r->host + off;
		}
	}
	return NULL;
}

static void *uva_to_host(const struct vb_dev *dev, uint64_t uva, uint64_t len)
{
	for (unsigned i = 0; i < dev->nregions; i++) {
		const struct vb_region *r = &dev->regions[i];
		uint64_t off = uva - r->uva;

		if (uva >= r->uva && off < r->size && len <= r->size - off)
			return r->host + off;
	}
	return NULL;
}

/* Our addresses of ring @q's three parts, or -EFAULT if one is unmapped. */
static int vq_translate(struct vb_dev *dev, unsigned q)
{
	struct vb_vq *vq = &dev->vq[q];
	uint64_t n = vq->num;
	void *desc, *avail, *used;

	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	if (!vq->addr_set || !n || !dev->nregions)
		return 0;
	/* avail and used carry used_event / avail_event after the ring. */
	desc = uva_to_host(dev, vq->desc_uva, 16 * n);
	avail = uva_to_host(dev, vq->avail_uva, 6 + 2 * n);
	used = uva_to_host(dev, vq->used_uva, 6 + 8 * n);
	if (!desc || !avail || !used) {
		vb_err(dev, "queue %u: ring addresses (desc 0x%llx avail 0x%llx used 0x%llx, size %u) "
		       "outside the memory table", q, (unsigned long long)vq->desc_uva,
		       (unsigned long long)vq->avail_uva, (unsigned long long)vq->used_uva, vq->num);
		return -EFAULT;
	}
	if (((uintptr_t)desc & 15) || ((uintptr_t)avail & 1) || ((uintptr_t)used & 3)) {
		vb_err(dev, "queue %u: misaligned ring (desc 0x%llx avail 0x%llx used 0x%llx)", q,
		       (unsigned long long)vq->desc_uva, (unsigned long long)vq->avail_uva,
		       (unsigned long long)vq->used_uva);
		return -EFAULT;
	}
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Device state                                                        */
/* ------------------------------------------------------------------ */

static unsigned nqueues(const struct vb_dev *dev)
{
	return 2 * dev->opts->queue_pairs;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void vq_close_kick(struct vb_dev *dev, struct vb_vq *vq)
{
	/* Closing removes it from epoll unless the fd is shared; be explicit. */
	if (vq->kickfd >= 0)
		epoll_ctl(dev->epfd, EPOLL_CTL_DEL, vq->kickfd, NULL);
	close_fd(&vq->kickfd);
}

static void vq_reset(struct vb_dev *dev, struct vb_vq *vq)
{
	vq_close_kick(dev, vq);
	close_fd(&vq->callfd);
	close_fd(&vq->errfd);
	free(vq->iov);
	memset(vq, 0, sizeof(*vq));
	vq->kickfd = vq->callfd = vq->errfd = -1;
}

static void regions_unmap(struct vb_region *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (r[i].map)
			munmap(r[i].map, r[i].map_len);
}

/* Back to the state of a fresh connection; counters survive. */
static void dev_reset(struct vb_dev *dev)
{
	for (unsigned q = 0; q < VB_MAX_QUEUES; q++)
		vq_reset(dev, &dev->vq[q]);
	regions_unmap(dev->regions, dev->nregions);
	memset(dev->regions, 0, sizeof(dev->regions));
	dev->nregions = 0;
	dev->last_region = 0;
	dev->features = 0;
	dev->protocol_features = 0;
	dev->status = 0;
	dev->owner = false;
	dev->hdr_len = sizeof(struct virtio_net_hdr_mrg_rxbuf);
}

void vb_dev_init(struct vb_dev *dev, const struct vb_opts *opts)
{
	memset(dev, 0, sizeof(*dev));
	dev->opts = opts;
	dev->listen_fd = dev->conn_fd = dev->epfd = -1;
	for (unsigned q = 0; q < VB_MAX_QUEUES; q++)
		dev->vq[q].kickfd = dev->vq[q].callfd = dev->vq[q].errfd = -1;
	dev_reset(dev);
}

/* Recompute which rings run; a ring that starts running is set up for it. */
static void rings_refresh(struct vb_dev *dev)
{
	for (unsigned q = 0; q < nqueues(dev); q++) {
		struct vb_vq *vq = &dev->vq[q];
		bool ready = vq->started && vq->enabled && vq->desc && !vq->broken;

		if (ready && !vq->ready) {
			vq->ready = true;
			vb_vq_on_ready(dev, q);
		} else if (!ready && vq->ready) {
			vq->ready = false;
			vb_log("queue %u stopped", q);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Guest memory that disappears                                        */
/* ------------------------------------------------------------------ */

/*
 * The frontend can shrink a file of its memory table after we mapped it,
 * and our next access to a page past the new end raises SIGBUS. Checking
 * seals cannot prevent it: our own primary's memfd is not sealed and a
 * hugetlbfs file cannot be, and hugetlbfs raises SIGBUS too when it runs
 * out of pages. So, as a kernel would with a fault on user memory, every
 * entry into the rings runs under a guard: a SIGBUS on guest memory jumps
 * back out of the access, and the memory table is dropped. A SIGBUS
 * anywhere else is a bug of ours and kills us as it would have.
 *
 * One thread (see vhost_backend.h), so one guard. SA_NODEFER leaves SIGBUS
 * unblocked after the jump, so sigsetjmp need not save the signal mask,
 * which would cost a system call on every entry.
 */
static struct vb_dev *volatile guard_dev;
static sigjmp_buf *volatile guard_env;	/* NULL: no guarded call running */
static void *volatile guard_addr;	/* where the fault was */

/* Is @addr in one of our mappings of the memory table? @return its index, or -1. */
static int region_of_mapping(const struct vb_dev *dev, const void *addr)
{
	uintptr_t a = (uintptr_t)addr;

	for (unsigned i = 0; i < dev->nregions; i++) {
		uintptr_t m = (uintptr_t)dev->regions[i].map;

		if (a >= m && a - m < dev->regions[i].map_len)
			return (int)i;
	}
	return -1;
}

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	sigjmp_buf *env = guard_env;

	(void)ctx;
	/* si_code > 0: raised by a fault, not sent by someone. */
	if (env && si->si_code > 0 && region_of_mapping(guard_dev, si->si_addr) >= 0) {
		guard_env = NULL;
		guard_addr = si->si_addr;
		siglongjmp(*env, 1);
	}
	/* Not guest memory: die of it (a fault comes back on return, a sent one is raised). */
	signal(sig, SIG_DFL);
	if (si->si_code <= 0)
		raise(sig);
}

int vb_fault_init(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };

	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL) < 0 ? -errno : 0;
}

/*
 * A guarded call on queue @q faulted at @addr: the memory table is no longer
 * what the frontend said. Drop it and stop every ring until a new table
 * comes; tell the frontend on each ring's error eventfd.
 */
static void mem_lost(struct vb_dev *dev, unsigned q, const void *addr)
{
	int i = region_of_mapping(dev, addr);
	const struct vb_region *r = &dev->regions[i < 0 ? 0 : i];
	uint64_t one = 1;

	vb_err(dev, "queue %u: guest memory at gpa 0x%llx (region %d: gpa 0x%llx, size 0x%llx) "
	       "is gone: the frontend shrank the file behind it (SIGBUS); memory table dropped, "
	       "every ring stopped until the frontend sends a new one", q,
	       (unsigned long long)(r->gpa + ((uintptr_t)addr - (uintptr_t)r->host)), i,
	       (unsigned long long)r->gpa, (unsigned long long)r->size);
	regions_unmap(dev->regions, dev->nregions);
	memset(dev->regions, 0, sizeof(dev->regions));
	dev->nregions = 0;
	dev->last_region = 0;
	for (unsigned k = 0; k < nqueues(dev); k++) {
		struct vb_vq *vq = &dev->vq[k];

		if (vq->ready && vq->errfd >= 0 && write(vq->errfd, &one, sizeof(one)) < 0)
			vb_log("queue %u: cannot signal its error eventfd: %s", k, strerror(errno));
		vq->ready = false;
		vq->pending = false;
		vq_translate(dev, k);	/* no table: no ring addresses */
	}
}

int vb_guarded(struct vb_dev *dev, unsigned q, int (*fn)(struct vb_dev *dev, unsigned q))
{
	sigjmp_buf env;
	int rc;

	if (guard_env)
		return fn(dev, q);	/* inside a guarded call: its guard catches */
	guard_dev = dev;
	if (sigsetjmp(env, 0)) {
		mem_lost(dev, q, guard_addr);
		return -EFAULT;
	}
	guard_env = &env;
	rc = fn(dev, q);
	guard_env = NULL;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Message handlers                                                    */
/* ------------------------------------------------------------------ */

static int vq_index(struct vb_dev *dev, uint32_t idx, const char *req)
{
	if (idx >= nqueues(dev)) {
		vb_err(dev, "%s: bad vring index %u (we have %u queues)", req, idx, nqueues(dev));
		return -EINVAL;
	}
	return (int)idx;
}

static int h_get_features(struct vb_dev *dev, struct vb_msg *msg)
{
	msg->p.u64 = dev->opts->features;
	return 0;
}

static int h_set_features(struct vb_dev *dev, struct vb_msg *msg)
{
	uint64_t f = msg->p.u64;

	if (f & ~dev->opts->features) {
		vb_err(dev, "SET_FEATURES 0x%llx: bits 0x%llx were not offered",
		       (unsigned long long)f, (unsigned long long)(f & ~dev->opts->features));
		return -EINVAL;
	}
	dev->features = f;
	dev->hdr_len = (vb_has_feature(dev, VIRTIO_F_VERSION_1) ||
			vb_has_feature(dev, VIRTIO_NET_F_MRG_RXBUF)) ?
		sizeof(struct virtio_net_hdr_mrg_rxbuf) : sizeof(struct virtio_net_hdr);
	vb_log("features 0x%llx: version_1 %d mrg_rxbuf %d event_idx %d in_order %d "
	       "protocol_features %d mq %d",
	       (unsigned long long)f, vb_has_feature(dev, VIRTIO_F_VERSION_1),
	       vb_has_feature(dev, VIRTIO_NET_F_MRG_RXBUF),
	       vb_has_feature(dev, VIRTIO_RING_F_EVENT_IDX),
	       vb_has_feature(dev, VIRTIO_F_IN_ORDER),
	       vb_has_feature(dev, VHOST_USER_F_PROTOCOL_FEATURES),
	       vb_has_feature(dev, VIRTIO_NET_F_MQ));
	return 0;
}

static int h_set_owner(struct vb_dev *dev, struct vb_msg *msg)
{
	(void)msg;
	dev->owner = true;
	return 0;
}

static int h_reset_owner(struct vb_dev *dev, struct vb_msg *msg)
{
	(void)msg;
	vb_log("RESET_OWNER: device reset");
	dev_reset(dev);
	return 0;
}

static int h_get_protocol_features(struct vb_dev *dev, struct vb_msg *msg)
{
	msg->p.u64 = dev->opts->protocol_features;
	return 0;
}

static int h_set_protocol_features(struct vb_dev *dev, struct vb_msg *msg)
{
	uint64_t f = msg->p.u64;

	if (f & ~dev->opts->protocol_features) {
		vb_err(dev, "SET_PROTOCOL_FEATURES 0x%llx: bits 0x%llx were not offered",
		       (unsigned long long)f,
		       (unsigned long long)(f & ~dev->opts->protocol_features));
		return -EINVAL;
	}
	dev->protocol_features = f;
	return 0;
}

static int h_get_queue_num(struct vb_dev *dev, struct vb_msg *msg)
{
	msg->p.u64 = dev->opts->queue_pairs;
	return 0;
}

/*
 * Map one region. The mapping starts at mmap_offset rounded down to the
 * file's block size (the huge page size on hugetlbfs, where mmap needs it).
 */
static int region_map(struct vb_dev *dev, unsigned i, const struct vhost_user_mem_region *in,
		      int fd, struct vb_region *out)
{
	uint64_t off = in->mmap_offset, size = in->memory_size, blk, start, len;
	struct stat stb;
	void *map;

	if (!size) {
		vb_err(dev, "SET_MEM_TABLE: region %u has size 0", i);
		return -EINVAL;
	}
	if (in->guest_phys_addr + size < size || in->userspace_addr + size < size ||
	    off + size < size || size > SIZE_MAX / 2) {
		vb_err(dev, "SET_MEM_TABLE: region %u: address or offset + size 0x%llx overflows",
		       i, (unsigned long long)size);
		return -EOVERFLOW;
	}
	if (fstat(fd, &stb) < 0) {
		vb_err(dev, "SET_MEM_TABLE: region %u: fstat: %s", i, strerror(errno));
		return -EBADF;
	}
	/* A pipe, socket or device: nothing we could share memory through. */
	if (!S_ISREG(stb.st_mode)) {
		vb_err(dev, "SET_MEM_TABLE: region %u: fd is not a file or memfd (mode 0%o), "
		       "unmappable", i, (unsigned)stb.st_mode);
		return -ENODEV;
	}
	/* Touching pages past the end of the file would raise SIGBUS. */
	if ((uint64_t)stb.st_size < off + size) {
		vb_err(dev, "SET_MEM_TABLE: region %u: offset 0x%llx + size 0x%llx beyond the end "
		       "of its file (%lld bytes), unmappable", i, (unsigned long long)off,
		       (unsigned long long)size, (long long)stb.st_size);
		return -EINVAL;
	}
	blk = (uint64_t)stb.st_blksize;
	if (blk < 4096 || (blk & (blk - 1)))
		blk = 4096;
	start = off & ~(blk - 1);
	len = (off - start + size + blk - 1) & ~(blk - 1);
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)start);
	if (map == MAP_FAILED) {
		vb_err(dev, "SET_MEM_TABLE: region %u: mmap of 0x%llx bytes at offset 0x%llx: %s, "
		       "unmappable", i, (unsigned long long)len, (unsigned long long)start,
		       strerror(errno));
		return -errno;
	}
	out->gpa = in->guest_phys_addr;
	out->uva = in->userspace_addr;
	out->size = size;
	out->map = map;
	out->map_len = len;
	out->host = (uint8_t *)map + (off - start);
	return 0;
}

static int h_set_mem_table(struct vb_dev *dev, struct vb_msg *msg)
{
	const struct vhost_user_memory *mem = &msg->p.memory;
	struct vb_region nr[VHOST_USER_MEMORY_MAX_NREGIONS];
	uint32_t n = mem->nregions;
	int rc;

	if (n > VHOST_USER_MEMORY_MAX_NREGIONS) {
		vb_err(dev, "SET_MEM_TABLE: too many regions (%u, at most %u)", n,
		       VHOST_USER_MEMORY_MAX_NREGIONS);
		return -E2BIG;
	}
	if (msg->hdr.size < 8 + n * sizeof(mem->regions[0])) {
		vb_err(dev, "SET_MEM_TABLE: bad size %u for %u regions", msg->hdr.size, n);
		return -EINVAL;
	}
	if (msg->nfds != n) {
		vb_err(dev, "SET_MEM_TABLE: %u regions but %u fds (region fd missing)", n, msg->nfds);
		return -EBADF;
	}
	memset(nr, 0, sizeof(nr));
	for (unsigned i = 0; i < n; i++) {
		rc = region_map(dev, i, &mem->regions[i], msg->fds[i], &nr[i]);
		if (rc < 0) {
			regions_unmap(nr, i);
			return rc;
		}
	}
	/* The new table replaces the old one only when all of it mapped. */
	regions_unmap(dev->regions, dev->nregions);
	memcpy(dev->regions, nr, sizeof(nr));
	dev->nregions = n;
	dev->last_region = 0;
	vb_log("memory table: %u region%s", n, n == 1 ? "" : "s");
	for (unsigned i = 0; i < n; i++)
		vb_log("  region %u: gpa 0x%llx uva 0x%llx size 0x%llx offset 0x%llx", i,
		       (unsigned long long)nr[i].gpa, (unsigned long long)nr[i].uva,
		       (unsigned long long)nr[i].size,
		       (unsigned long long)mem->regions[i].mmap_offset);
	/* Ring addresses are frontend addresses: look them up again. */
	for (unsigned q = 0; q < nqueues(dev); q++) {
		dev->vq[q].ready = false;
		vq_translate(dev, q);
	}
	return 0;
}

static int h_set_vring_num(struct vb_dev *dev, struct vb_msg *msg)
{
	const struct vhost_user_vring_state *s = &msg->p.state;
	int q = vq_index(dev, s->index, "SET_VRING_NUM");
	struct vb_vq *vq;
	struct iovec *iov;

	if (q < 0)
		return q;
	vq = &dev->vq[q];
	if (!s->num || s->num > VB_MAX_RING_SIZE || (s->num & (s->num - 1))) {
		vb_err(dev, "SET_VRING_NUM: queue %d: bad ring size %u (a power of 2 up to %u)",
		       q, s->num, VB_MAX_RING_SIZE);
		return -EINVAL;
	}
	if (vq->started) {
		vb_err(dev, "SET_VRING_NUM: queue %d is running", q);
		return -EBUSY;
	}
	if (s->num > vq->iov_cap) {
		iov = realloc(vq->iov, s->num * sizeof(*iov));
		if (!iov)
			return -ENOMEM;
		vq->iov = iov;
		vq->iov_cap = s->num;
	}
	vq->num = s->num;
	vq->broken = false;
	vq_translate(dev, (unsigned)q);
	return 0;
}

static int h_set_vring_addr(struct vb_dev *dev, struct vb_msg *msg)
{
	const struct vhost_user_vring_addr *a = &msg->p.addr;
	int q = vq_index(dev, a->index, "SET_VRING_ADDR");
	struct vb_vq *vq;

	if (q < 0)
		return q;
	vq = &dev->vq[q];
	vq->desc_uva = a->desc_user_addr;
	vq->avail_uva = a->avail_user_addr;
	vq->used_uva = a->used_user_addr;
	vq->addr_set = true;
	vq->broken = false;
	vq->ready = false;	/* set up again (notification state) below */
	if (!vq->num) {
		vb_err(dev, "SET_VRING_ADDR: queue %d before SET_VRING_NUM", q);
		return -EINVAL;
	}
	if (!dev->nregions) {
		vb_err(dev, "SET_VRING_ADDR: queue %d before SET_MEM_TABLE", q);
		return -EINVAL;
	}
	return vq_translate(dev, (unsigned)q);
}

static int h_set_vring_base(struct vb_dev *dev, struct vb_msg *msg)
{
	const struct vhost_user_vring_state *s = &msg->p.state;
	int q = vq_index(dev, s->index, "SET_VRING_BASE");
	struct vb_vq *vq;

	if (q < 0)
		return q;
	vq = &dev->vq[q];
	if (s->num > 0xffff) {
		vb_err(dev, "SET_VRING_BASE: queue %d: base %u is not a 16-bit index", q, s->num);
		return -EINVAL;
	}
	if (vq->started) {
		vb_err(dev, "SET_VRING_BASE: queue %d is running", q);
		return -EBUSY;
	}
	vq->last_avail = vq->used_idx = vq->pub_used = (uint16_t)s->num;
	vq->broken = false;
	return 0;
}

static int h_get_vring_base(struct vb_dev *dev, struct vb_msg *msg)
{
	struct vhost_user_vring_state *s = &msg->p.state;
	int q = vq_index(dev, s->index, "GET_VRING_BASE");
	struct vb_vq *vq;

	s->num = 0;
	if (q < 0)
		return q;
	vq = &dev->vq[q];
	/* Stop the ring; its fds go too, a restart sends new ones. */
	vq->started = false;
	vq_close_kick(dev, vq);
	close_fd(&vq->callfd);
	rings_refresh(dev);
	s->num = vq->last_avail;
	vb_log("queue %d: GET_VRING_BASE: last avail index %u", q, vq->last_avail);
	return 0;
}

/* Is @fd an eventfd? Only those are safe to read and write without blocking. */
static bool is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

/* KICK, CALL and ERR: a queue index, and an eventfd unless bit 8 says none. */
static int vring_fd_msg(struct vb_dev *dev, struct vb_msg *msg, const char *req, int *fd)
{
	uint64_t u = msg->p.u64;
	int q = vq_index(dev, (uint32_t)(u & VHOST_USER_VRING_IDX_MASK), req);

	*fd = -1;
	if (q < 0)
		return q;
	if (u & VHOST_USER_VRING_NOFD_MASK)
		return q;
	if (msg->nfds < 1) {
		vb_err(dev, "%s: queue %d: fd missing", req, q);
		return -EBADF;
	}
	if (!is_eventfd(msg->fds[0])) {
		vb_err(dev, "%s: queue %d: fd is not an eventfd", req, q);
		return -EINVAL;
	}
	*fd = msg->fds[0];
	msg->fds[0] = -1;	/* ours now */
	return q;
}

static int h_set_vring_kick(struct vb_dev *dev, struct vb_msg *msg)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct vb_vq *vq;
	int fd, q = vring_fd_msg(dev, msg, "SET_VRING_KICK", &fd);

	if (q < 0)
		return q;
	vq = &dev->vq[q];
	vq_close_kick(dev, vq);
	vq->kickfd = fd;
	if (fd >= 0) {
		ev.data.u32 = (uint32_t)q;
		if (epoll_ctl(dev->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			vb_err(dev, "SET_VRING_KICK: queue %d: epoll: %s", q, strerror(errno));
	}
	vq->started = true;
	vq->broken = false;
	vq->ready = false;	/* a new kick fd: set the ring up again */
	/* Without protocol features there is no SET_VRING_ENABLE. */
	if (!vb_has_feature(dev, VHOST_USER_F_PROTOCOL_FEATURES))
		vq->enabled = true;
	return 0;
}

static int h_set_vring_call(struct vb_dev *dev, struct vb_msg *msg)
{
	int fd, q = vring_fd_msg(dev, msg, "SET_VRING_CALL", &fd);

	if (q < 0)
		return q;
	close_fd(&dev->vq[q].callfd);
	dev->vq[q].callfd = fd;
	dev->vq[q].signalled_valid = false;
	return 0;
}

static int h_set_vring_err(struct vb_dev *dev, struct vb_msg *msg)
{
	int fd, q = vring_fd_msg(dev, msg, "SET_VRING_ERR", &fd);

	if (q < 0)
		return q;
	close_fd(&dev->vq[q].errfd);
	dev->vq[q].errfd = fd;
	return 0;
}

static int h_set_vring_enable(struct vb_dev *dev, struct vb_msg *msg)
{
	const struct vhost_user_vring_state *s = &msg->p.state;
	int q = vq_index(dev, s->index, "SET_VRING_ENABLE");

	if (q < 0)
		return q;
	if (s->num > 1) {
		vb_err(dev, "SET_VRING_ENABLE: queue %d: bad state %u", q, s->num);
		return -EINVAL;
	}
	dev->vq[q].enabled = s->num;
	return 0;
}

static int h_set_status(struct vb_dev *dev, struct vb_msg *msg)
{
	dev->status = msg->p.u64;
	return 0;
}

static int h_get_status(struct vb_dev *dev, struct vb_msg *msg)
{
	msg->p.u64 = dev->status;
	return 0;
}

/* Harmless requests we have nothing to do for: acknowledged, fds closed. */
static int h_ignore(struct vb_dev *dev, struct vb_msg *msg)
{
	(void)dev;
	(void)msg;
	return 0;
}

struct vb_handler {
	const char *name;
	int (*fn)(struct vb_dev *dev, struct vb_msg *msg);
	uint16_t size_min, size_max;	/* payload bytes accepted */
	uint8_t max_fds;
	uint8_t reply_size;		/* > 0: an explicit reply of this many bytes */
};

#define U64 sizeof(uint64_t)
#define STATE sizeof(struct vhost_user_vring_state)

static const struct vb_handler handlers[VHOST_USER_REQUEST_MAX] = {
	[VHOST_USER_GET_FEATURES] = { "GET_FEATURES", h_get_features, 0, 0, 0, U64 },
	[VHOST_USER_SET_FEATURES] = { "SET_FEATURES", h_set_features, U64, U64, 0, 0 },
	[VHOST_USER_SET_OWNER] = { "SET_OWNER", h_set_owner, 0, 0, 0, 0 },
	[VHOST_USER_RESET_OWNER] = { "RESET_OWNER", h_reset_owner, 0, 0, 0, 0 },
	[VHOST_USER_SET_MEM_TABLE] = { "SET_MEM_TABLE", h_set_mem_table, 8,
		sizeof(struct vhost_user_memory), VHOST_USER_MEMORY_MAX_NREGIONS, 0 },
	[VHOST_USER_SET_LOG_FD] = { "SET_LOG_FD", h_ignore, 0, 0, 1, 0 },
	[VHOST_USER_SET_VRING_NUM] = { "SET_VRING_NUM", h_set_vring_num, STATE, STATE, 0, 0 },
	[VHOST_USER_SET_VRING_ADDR] = { "SET_VRING_ADDR", h_set_vring_addr,
		sizeof(struct vhost_user_vring_addr), sizeof(struct vhost_user_vring_addr), 0, 0 },
	[VHOST_USER_SET_VRING_BASE] = { "SET_VRING_BASE", h_set_vring_base, STATE, STATE, 0, 0 },
	[VHOST_USER_GET_VRING_BASE] = { "GET_VRING_BASE", h_get_vring_base, STATE, STATE, 0, STATE },
	[VHOST_USER_SET_VRING_KICK] = { "SET_VRING_KICK", h_set_vring_kick, U64, U64, 1, 0 },
	[VHOST_USER_SET_VRING_CALL] = { "SET_VRING_CALL", h_set_vring_call, U64, U64, 1, 0 },
	[VHOST_USER_SET_VRING_ERR] = { "SET_VRING_ERR", h_set_vring_err, U64, U64, 1, 0 },
	[VHOST_USER_GET_PROTOCOL_FEATURES] = { "GET_PROTOCOL_FEATURES", h_get_protocol_features,
		0, 0, 0, U64 },
	[VHOST_USER_SET_PROTOCOL_FEATURES] = { "SET_PROTOCOL_FEATURES", h_set_protocol_features,
		U64, U64, 0, 0 },
	[VHOST_USER_GET_QUEUE_NUM] = { "GET_QUEUE_NUM", h_get_queue_num, 0, 0, 0, U64 },
	[VHOST_USER_SET_VRING_ENABLE] = { "SET_VRING_ENABLE", h_set_vring_enable, STATE, STATE, 0, 0 },
	[VHOST_USER_SEND_RARP] = { "SEND_RARP", h_ignore, U64, U64, 0, 0 },
	[VHOST_USER_NET_SET_MTU] = { "NET_SET_MTU", h_ignore, U64, U64, 0, 0 },
	[VHOST_USER_SET_SLAVE_REQ_FD] = { "SET_SLAVE_REQ_FD", h_ignore, 0, 0, 1, 0 },
	[VHOST_USER_SET_STATUS] = { "SET_STATUS", h_set_status, U64, U64, 0, 0 },
	[VHOST_USER_GET_STATUS] = { "GET_STATUS", h_get_status, 0, 0, 0, U64 },
};

/* ------------------------------------------------------------------ */
/* The socket                                                          */
/* ------------------------------------------------------------------ */

/* Milliseconds from now to @deadline (CLOCK_MONOTONIC), 0 if it has passed. */
static int ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
		(deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? (int)ms : 0;
}

/*
 * Read exactly @len bytes by @deadline: a bound on the whole message, since
 * a frontend could otherwise keep each read just inside a per-read timeout
 * and hold our only thread (and so every ring) as long as it likes.
 * @return 0 or -errno (-ECONNRESET on EOF, -ETIMEDOUT past the deadline).
 */
static int recv_full(int fd, void *buf, size_t len, const struct timespec *deadline)
{
	uint8_t *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int ms = ms_left(deadline), rc;
		ssize_t n;

		if (!ms)
			return -ETIMEDOUT;
		rc = poll(&pfd, 1, ms);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return rc ? -errno : -ETIMEDOUT;
		n = recv(fd, p, len, MSG_DONTWAIT);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int msg_recv(struct vb_dev *dev, struct vb_msg *msg)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VB_RECV_FDS_MAX)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = &msg->hdr, .iov_len = sizeof(msg->hdr) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	struct timespec deadline;
	ssize_t n;
	int rc;

	memset(&msg->hdr, 0, sizeof(msg->hdr));
	msg->nfds = msg->nfds_sent = 0;
	msg->fds_truncated = false;
	do {
		n = recvmsg(dev->conn_fd, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += VB_MSG_TIMEOUT_S;
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t cnt;
		int *fds = (int *)CMSG_DATA(c);

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < cnt; i++) {
			int fd;

			memcpy(&fd, &fds[i], sizeof(fd));
			msg->nfds_sent++;
			if (msg->nfds < VHOST_USER_MEMORY_MAX_NREGIONS)
				msg->fds[msg->nfds++] = fd;
			else
				close(fd);
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		msg->fds_truncated = true;
	if ((size_t)n < sizeof(msg->hdr)) {
		rc = recv_full(dev->conn_fd, (uint8_t *)&msg->hdr + n, sizeof(msg->hdr) - (size_t)n,
			       &deadline);
		if (rc < 0)
			return rc;
	}
	if (msg->hdr.size > sizeof(msg->p))
		return -EMSGSIZE;
	return recv_full(dev->conn_fd, &msg->p, msg->hdr.size, &deadline);
}

static int msg_reply(struct vb_dev *dev, struct vb_msg *msg, uint32_t size)
{
	uint8_t buf[sizeof(msg->hdr) + sizeof(msg->p)], *p = buf;
	size_t len = sizeof(msg->hdr) + size;

	msg->hdr.flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY;
	msg->hdr.size = size;
	memcpy(buf, &msg->hdr, sizeof(msg->hdr));
	memcpy(buf + sizeof(msg->hdr), &msg->p, size);
	while (len) {
		ssize_t n = send(dev->conn_fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void msg_close_fds(struct vb_msg *msg)
{
	for (unsigned i = 0; i < msg->nfds; i++)
		close_fd(&msg->fds[i]);
}

/* Request @req's name for the log ("request N" if we do not know it). */
static const char *req_name(uint32_t req, char *buf, size_t len)
{
	if (req < VHOST_USER_REQUEST_MAX && handlers[req].name)
		return handlers[req].name;
	snprintf(buf, len, "request %u", req);
	return buf;
}

/*
 * Run one well-framed message; the fds it did not take are closed.
 * @return 0, or -errno to drop the connection (-EPROTO: a protocol version
 * we do not speak, whose replies the frontend could not read either).
 */
static int msg_dispatch(struct vb_dev *dev, struct vb_msg *msg)
{
	uint32_t req = msg->hdr.request, size = msg->hdr.size, flags = msg->hdr.flags;
	const struct vb_handler *h = req < VHOST_USER_REQUEST_MAX ? &handlers[req] : NULL;
	bool need_reply = (flags & VHOST_USER_FLAG_NEED_REPLY) &&
		(dev->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
	char unknown[24];
	const char *name = req_name(req, unknown, sizeof(unknown));
	int rc;

	/*
	 * vhost-user has no error reply to a GET, and a reply of ours would be
	 * read as version 1 by a frontend that asked in another: hang up, so
	 * that it learns at once instead of waiting for a reply.
	 */
	if ((flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
		vb_err(dev, "%s: protocol version %u, we speak %u: closing the connection (the "
		       "frontend must speak vhost-user version %u)", name,
		       flags & VHOST_USER_VERSION_MASK, VHOST_USER_VERSION, VHOST_USER_VERSION);
		msg_close_fds(msg);
		return -EPROTO;
	}
	if (flags & VHOST_USER_FLAG_REPLY) {
		vb_err(dev, "%s: flagged as a reply (flags 0x%x), ignored: a frontend sends "
		       "requests only", name, flags);
		msg_close_fds(msg);
		return 0;
	}
	if (!h || !h->fn) {
		vb_err(dev, "unknown request %u (size %u), ignored", req, size);
		rc = -ENOTSUP;
	} else if (size < h->size_min || size > h->size_max) {
		vb_err(dev, "%s: bad size %u (expected %u%s%u)", name, size, h->size_min,
		       h->size_min == h->size_max ? "" : "..",
		       h->size_min == h->size_max ? h->size_min : h->size_max);
		rc = -EINVAL;
	} else if (msg->nfds_sent > h->max_fds || msg->fds_truncated) {
		vb_err(dev, "%s: %s%u fds attached, at most %u expected: refused, every fd closed "
		       "(the frontend must attach only the fds the request carries)", name,
		       msg->fds_truncated ? "more than " : "", msg->nfds_sent, h->max_fds);
		rc = -EINVAL;
	} else {
		if (size < sizeof(msg->p))
			memset(msg->p.raw + size, 0, sizeof(msg->p) - size);
		rc = h->fn(dev, msg);
	}
	msg_close_fds(msg);
	rings_refresh(dev);

	if (h && h->reply_size) {
		/* The frontend waits for this reply whatever happened. */
		if (rc < 0 && req != VHOST_USER_GET_VRING_BASE)
			msg->p.u64 = 0;
		return msg_reply(dev, msg, h->reply_size);
	}
	if (need_reply) {
		msg->p.u64 = rc < 0 ? 1 : 0;
		return msg_reply(dev, msg, sizeof(uint64_t));
	}
	return 0;
}

int vb_conn_handle(struct vb_dev *dev)
{
	struct vb_msg msg;
	char unknown[24];
	int rc;

	rc = msg_recv(dev, &msg);
	if (rc == -EMSGSIZE) {
		vb_err(dev, "oversized message: request %u, size %u (at most %zu), closing the "
		       "connection", msg.hdr.request, msg.hdr.size, sizeof(msg.p));
	} else if (rc == -ETIMEDOUT) {
		vb_err(dev, "%s: message not complete within %d s (%u payload bytes announced), "
		       "closing the connection: a frontend must send a message in one go",
		       req_name(msg.hdr.request, unknown, sizeof(unknown)), VB_MSG_TIMEOUT_S,
		       msg.hdr.size);
	}
	if (rc < 0) {
		msg_close_fds(&msg);
		return rc;
	}
	return msg_dispatch(dev, &msg);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

static int fill_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

static int listen_add(struct vb_dev *dev)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = VB_EV_LISTEN };

	return epoll_ctl(dev->epfd, EPOLL_CTL_ADD, dev->listen_fd, &ev) < 0 ? -errno : 0;
}

/* A socket file that nobody listens on any more (a previous run crashed). */
static bool stale_socket(const struct sockaddr_un *sa)
{
	struct stat stb;
	bool stale;
	int probe;

	if (lstat(sa->sun_path, &stb) < 0 || !S_ISSOCK(stb.st_mode))
		return false;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return false;
	stale = connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) < 0 &&
		errno == ECONNREFUSED;
	close(probe);
	return stale;
}

int vb_socket_open(struct vb_dev *dev)
{
	struct sockaddr_un sa;
	int fd, rc;

	dev->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (dev->epfd < 0)
		return -errno;
	rc = fill_addr(dev->opts->socket_path, &sa);
	if (rc < 0 || dev->opts->client)
		return rc;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		if (rc == -EADDRINUSE && stale_socket(&sa)) {
			unlink(sa.sun_path);
			rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
		}
		if (rc < 0) {
			close(fd);
			return rc;
		}
	}
	dev->created_socket = true;
	if (listen(fd, 1) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	dev->listen_fd = fd;
	return listen_add(dev);
}

void vb_socket_close(struct vb_dev *dev)
{
	if (dev->conn_fd >= 0)
		vb_disconnect(dev, "exiting");
	close_fd(&dev->listen_fd);
	if (dev->created_socket)
		unlink(dev->opts->socket_path);
	dev->created_socket = false;
	close_fd(&dev->epfd);
}

static int conn_setup(struct vb_dev *dev, int fd)
{
	struct timeval tv = { .tv_sec = VB_MSG_TIMEOUT_S };
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = VB_EV_CONN };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (epoll_ctl(dev->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	if (dev->listen_fd >= 0)
		epoll_ctl(dev->epfd, EPOLL_CTL_DEL, dev->listen_fd, NULL);
	dev->conn_fd = fd;
	dev->err_logged = 0;
	dev->small_buf_logged = false;
	dev->st.connections++;
	dev_reset(dev);
	vb_log("frontend connected");
	return 1;
}

int vb_accept(struct vb_dev *dev)
{
	int fd = accept4(dev->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) ? 0 : -errno;
	/* Non-blocking only for accept; messages are read with a timeout. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return conn_setup(dev, fd);
}

int vb_connect(struct vb_dev *dev)
{
	struct sockaddr_un sa;
	int fd, rc = fill_addr(dev->opts->socket_path, &sa);

	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = errno;
		close(fd);
		return (rc == ENOENT || rc == ECONNREFUSED || rc == EINTR) ? 0 : -rc;
	}
	return conn_setup(dev, fd);
}

void vb_disconnect(struct vb_dev *dev, const char *why)
{
	if (dev->conn_fd < 0)
		return;
	vb_log("frontend disconnected (%s)", why);
	epoll_ctl(dev->epfd, EPOLL_CTL_DEL, dev->conn_fd, NULL);
	close_fd(&dev->conn_fd);
	dev_reset(dev);
	if (dev->listen_fd >= 0)
		listen_add(dev);
}
