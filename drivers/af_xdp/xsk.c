/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The kernel side: XSK sockets on one shared UMEM (the port's pool), each
 * process's own mappings of their rings, the XDP program that redirects
 * the port's queues to them (loaded with libbpf, attached with a bpf link
 * that goes away with the primary), and the link monitor.
 *
 * libxdp's xsk_socket__create() would map the rings inside a private
 * struct of the creating process and offers no way to use a socket fd
 * received from another process, so sockets and mappings are made here
 * with the plain AF_XDP calls; the ring accessors are libxdp's
 * (<xdp/xsk.h>), and the program and map go through libbpf.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "afxdp_priv.h"

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ==== rings ============================================================= */

static void *ring_map(struct afxdp_q *q, int i, size_t len, off_t pgoff)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, q->fd, pgoff);

	if (m == MAP_FAILED)
		return NULL;
	q->map[i] = m;
	q->map_len[i] = len;
	return m;
}

#define RING_SET(r, m, o, sz)                                                  \
	do {                                                                   \
		(r)->producer = (void *)((char *)(m) + (o).producer);          \
		(r)->consumer = (void *)((char *)(m) + (o).consumer);          \
		(r)->flags = (void *)((char *)(m) + (o).flags);                \
		(r)->ring = (char *)(m) + (o).desc;                            \
		(r)->size = (sz);                                              \
		(r)->mask = (sz) - 1;                                          \
	} while (0)

/* Map the four rings of the socket @fd (this process's copy) for @qp. */
int afxdp_rings_map(struct afxdp_port *p, struct afxdp_q *q, uint16_t qp, int fd)
{
	struct xdp_mmap_offsets off;
	socklen_t len = sizeof(off);
	uint32_t n = p->ring_size;
	void *m;

	memset(q, 0, sizeof(*q));
	q->p = p;
	q->qp = qp;
	q->fd = fd;
	if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &len) < 0) {
		int e = errno;

		ax_err("afxdp %s: queue pair %u: fd %d is not an AF_XDP socket (%s): the primary handed over something else; restart both from the same build",
		       mpops_port_name(p->port), qp, fd, strerror(e));
		return -e;
	}
	if (!(m = ring_map(q, 0, off.rx.desc + n * sizeof(struct xdp_desc), XDP_PGOFF_RX_RING)))
		goto fail;
	RING_SET(&q->rx, m, off.rx, n);
	if (!(m = ring_map(q, 1, off.tx.desc + n * sizeof(struct xdp_desc), XDP_PGOFF_TX_RING)))
		goto fail;
	RING_SET(&q->tx, m, off.tx, n);
	if (!(m = ring_map(q, 2, off.fr.desc + n * sizeof(uint64_t), XDP_UMEM_PGOFF_FILL_RING)))
		goto fail;
	RING_SET(&q->fill, m, off.fr, n);
	if (!(m = ring_map(q, 3, off.cr.desc + n * sizeof(uint64_t),
			   XDP_UMEM_PGOFF_COMPLETION_RING)))
		goto fail;
	RING_SET(&q->comp, m, off.cr, n);
	afxdp_rings_sync(q);
	return 0;
fail:
	{
		int e = errno;

		ax_err("afxdp %s: queue pair %u: cannot map the socket's rings: %s",
		       mpops_port_name(p->port), qp, strerror(e));
		afxdp_rings_unmap(q);
		return -e;
	}
}

void afxdp_rings_unmap(struct afxdp_q *q)
{
	for (int i = 0; i < 4; i++) {
		if (q->map[i])
			munmap(q->map[i], q->map_len[i]);
		q->map[i] = NULL;
	}
}

/* Take the ring positions from the rings themselves: another process (a
 * dead owner, the primary at stop) may have moved them since this
 * process's cached copies were made. */
void afxdp_rings_sync(struct afxdp_q *q)
{
	q->fill.cached_prod = __atomic_load_n(q->fill.producer, __ATOMIC_ACQUIRE);
	q->fill.cached_cons = __atomic_load_n(q->fill.consumer, __ATOMIC_ACQUIRE) + q->fill.size;
	q->tx.cached_prod = __atomic_load_n(q->tx.producer, __ATOMIC_ACQUIRE);
	q->tx.cached_cons = __atomic_load_n(q->tx.consumer, __ATOMIC_ACQUIRE) + q->tx.size;
	q->rx.cached_cons = __atomic_load_n(q->rx.consumer, __ATOMIC_ACQUIRE);
	q->rx.cached_prod = __atomic_load_n(q->rx.producer, __ATOMIC_ACQUIRE);
	q->comp.cached_cons = __atomic_load_n(q->comp.consumer, __ATOMIC_ACQUIRE);
	q->comp.cached_prod = __atomic_load_n(q->comp.producer, __ATOMIC_ACQUIRE);
}

/* ==== sockets =========================================================== */

static int xsk_socket(struct afxdp_port *p)
{
	int fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		int e = errno;

		if (e == EPERM || e == EACCES)
			ax_err("afxdp %s: no permission to open an AF_XDP socket: run the primary as root or with CAP_NET_RAW (secondaries need none)",
			       mpops_port_name(p->port));
		else
			ax_err("afxdp %s: cannot open an AF_XDP socket: %s (a kernel with CONFIG_XDP_SOCKETS is needed)",
			       mpops_port_name(p->port), strerror(e));
		return -e;
	}
	return fd;
}

static int ring_sizes(struct afxdp_port *p, int fd, int with_umem_rings)
{
	int n = (int)p->ring_size;

	if ((with_umem_rings &&
	     (setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &n, sizeof(n)) < 0 ||
	      setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &n, sizeof(n)) < 0)) ||
	    setsockopt(fd, SOL_XDP, XDP_RX_RING, &n, sizeof(n)) < 0 ||
	    setsockopt(fd, SOL_XDP, XDP_TX_RING, &n, sizeof(n)) < 0) {
		int e = errno;

		ax_err("afxdp %s: cannot size the socket's rings to %d entries: %s",
		       mpops_port_name(p->port), n, strerror(e));
		return -e;
	}
	return 0;
}

/* bind, again a few times while the queue's previous socket goes away. */
static int xsk_bind(int fd, struct sockaddr_xdp *sa)
{
	for (int i = 0;; i++) {
		if (bind(fd, (struct sockaddr *)sa, sizeof(*sa)) == 0)
			return 0;
		if (errno != EBUSY || i == 10)
			return -errno;
		sleep_ms(20);
	}
}

static int bind_error(struct afxdp_port *p, uint16_t qp, int rc)
{
	const char *iface = p->sh->iface, *name = mpops_port_name(p->port);
	unsigned queue = p->sh->start_queue + qp;

	if (rc == -EBUSY)
		ax_err("afxdp %s: queue %u of %s is busy: another AF_XDP socket is bound to it; stop that program or pick another start_queue",
		       name, queue, iface);
	else if (rc == -EINVAL)
		ax_err("afxdp %s: cannot bind to queue %u of %s: the interface has no such queue, or refused the UMEM; check its queues (ethtool -l %s)",
		       name, queue, iface, iface);
	else
		ax_err("afxdp %s: cannot bind to queue %u of %s: %s", name, queue, iface,
		       strerror(-rc));
	return rc;
}

static void busy_poll_set(struct afxdp_port *p, int fd)
{
	int one = 1, usec = 20, budget = p->sh->busy_poll;

	if (!budget)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &usec, sizeof(usec)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget)) < 0) {
		ax_warn("afxdp %s: busy polling is not available here (%s): going on without it",
			mpops_port_name(p->port), strerror(errno));
		p->sh->busy_poll = 0;
	}
}

/*
 * One socket per queue pair; the first registers the UMEM (the pool's
 * buffers, at this process's address), the others share it with rings of
 * their own. @zc_mode: enum afxdp_zero_copy.
 */
int afxdp_sockets_create(struct afxdp_port *p, int zc_mode)
{
	struct xdp_umem_reg mr = {
		.addr = (uintptr_t)p->umem,
		.len = (uint64_t)p->nb_frames * p->frame_size,
		.chunk_size = p->frame_size,
		.headroom = 0,
	};
	const char *name = mpops_port_name(p->port);
	int rc;

	for (uint16_t qp = 0; qp < p->nb_qp; qp++) {
		struct sockaddr_xdp sa = {
			.sxdp_family = AF_XDP,
			.sxdp_ifindex = p->sh->ifindex,
			.sxdp_queue_id = p->sh->start_queue + qp,
		};
		int fd;

		if ((fd = xsk_socket(p)) < 0)
			return fd;
		p->xsk_fd[qp] = fd;
		if (qp == 0 && setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &mr, sizeof(mr)) < 0) {
			rc = -errno;
			ax_err("afxdp %s: cannot register the UMEM (%llu bytes): %s%s", name,
			       (unsigned long long)mr.len, strerror(-rc),
			       rc == -EPERM || rc == -ENOMEM ?
				       ": raise RLIMIT_MEMLOCK or run with CAP_IPC_LOCK" : "");
			return rc;
		}
		if ((rc = ring_sizes(p, fd, 1)) < 0)
			return rc;
		if (qp == 0) {
			sa.sxdp_flags = XDP_USE_NEED_WAKEUP;
			if (zc_mode != AFXDP_ZC_OFF) {
				sa.sxdp_flags |= XDP_ZEROCOPY;
				rc = xsk_bind(fd, &sa);
				if (rc == 0) {
					p->sh->zero_copy = 1;
				} else if ((rc == -EOPNOTSUPP || rc == -EPROTONOSUPPORT) &&
					   zc_mode == AFXDP_ZC_AUTO) {
					ax_info("afxdp %s: %s has no zero-copy AF_XDP: using copy mode",
						name, p->sh->iface);
				} else if (rc == -EOPNOTSUPP || rc == -EPROTONOSUPPORT) {
					ax_err("afxdp %s: %s refused zero-copy: use zero_copy=auto or off",
					       name, p->sh->iface);
					return -EOPNOTSUPP;
				} else {
					return bind_error(p, qp, rc);
				}
			}
			if (!p->sh->zero_copy) {
				sa.sxdp_flags = XDP_USE_NEED_WAKEUP | XDP_COPY;
				if ((rc = xsk_bind(fd, &sa)) < 0)
					return bind_error(p, qp, rc);
			}
		} else {
			/* Same UMEM, another queue: the flags are the first socket's. */
			sa.sxdp_flags = XDP_SHARED_UMEM;
			sa.sxdp_shared_umem_fd = (uint32_t)p->xsk_fd[0];
			if ((rc = xsk_bind(fd, &sa)) < 0)
				return bind_error(p, qp, rc);
		}
		busy_poll_set(p, fd);
	}
	return 0;
}

/* ==== the XDP program =================================================== */

/*
 * The program, six instructions, so that building needs no BPF compiler:
 *   return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
 * A queue without a socket in the map (or with it taken out at stop)
 * passes its frames on to the kernel's stack.
 */
static int prog_load(struct afxdp_port *p)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = BPF_REG_2, .src_reg = BPF_REG_1,
		  .off = offsetof(struct xdp_md, rx_queue_index) },
		{ .code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = BPF_REG_1,
		  .src_reg = BPF_PSEUDO_MAP_FD, .imm = p->map_fd },
		{ 0 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_3, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	char log[1024] = "";
	LIBBPF_OPTS(bpf_prog_load_opts, o, .log_buf = log, .log_size = sizeof(log));
	int fd;

	fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "mpops_xsk", "Dual BSD/GPL", insns,
			   sizeof(insns) / sizeof(insns[0]), &o);
	if (fd < 0)
		ax_err("afxdp %s: the kernel refused the XDP program: %s%s%s",
		       mpops_port_name(p->port), strerror(-fd), log[0] ? ": " : "", log);
	return fd;
}

static int link_attach(struct afxdp_port *p, uint32_t flags)
{
	LIBBPF_OPTS(bpf_link_create_opts, o, .flags = flags);
	int fd = bpf_link_create(p->prog_fd, (int)p->sh->ifindex, BPF_XDP, &o);

	return fd < 0 ? -errno : fd;
}

/* Map, program, attach. @xdp_mode: enum afxdp_xdp_mode. */
int afxdp_prog_attach(struct afxdp_port *p, int xdp_mode)
{
	const char *name = mpops_port_name(p->port), *iface = p->sh->iface;
	uint32_t entries = (uint32_t)p->sh->start_queue + p->nb_qp;
	int fd = -EOPNOTSUPP;

	p->map_fd = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "mpops_xsks", sizeof(int), sizeof(int),
				   entries, NULL);
	if (p->map_fd < 0) {
		int rc = p->map_fd;

		p->map_fd = -1;
		if (rc == -EPERM || rc == -EACCES)
			ax_err("afxdp %s: no permission to create BPF maps: run the primary as root or with CAP_BPF and CAP_NET_ADMIN",
			       name);
		else
			ax_err("afxdp %s: cannot create the XSKMAP: %s", name, strerror(-rc));
		return rc;
	}
	if ((p->prog_fd = prog_load(p)) < 0) {
		int rc = p->prog_fd;

		p->prog_fd = -1;
		return rc;
	}
	if (xdp_mode != AFXDP_XDP_GENERIC) {
		fd = link_attach(p, XDP_FLAGS_DRV_MODE);
		if (fd >= 0)
			p->sh->native = 1;
		else if (fd == -EOPNOTSUPP && xdp_mode == AFXDP_XDP_AUTO)
			ax_info("afxdp %s: %s has no native XDP: using generic mode", name, iface);
		else if (fd == -EOPNOTSUPP) {
			ax_err("afxdp %s: %s refused native XDP: use mode=auto or generic", name,
			       iface);
			return fd;
		}
	}
	if (fd == -EOPNOTSUPP)
		fd = link_attach(p, XDP_FLAGS_SKB_MODE);
	if (fd < 0) {
		if (fd == -EBUSY || fd == -EEXIST)
			ax_err("afxdp %s: %s already has an XDP program: remove it (ip link set dev %s xdp off) or stop the program that holds it",
			       name, iface, iface);
		else if (fd == -EPERM || fd == -EACCES)
			ax_err("afxdp %s: no permission to attach an XDP program to %s: run the primary as root or with CAP_NET_ADMIN and CAP_BPF",
			       name, iface);
		else
			ax_err("afxdp %s: cannot attach the XDP program to %s: %s", name, iface,
			       strerror(-fd));
		return fd;
	}
	p->link_fd = fd;
	return 0;
}

/* Put queue pair @qp's socket in the map (@on) or take it out. */
int afxdp_queue_attach(struct afxdp_port *p, uint16_t qp, int on)
{
	int key = p->sh->start_queue + qp, rc;

	rc = on ? bpf_map_update_elem(p->map_fd, &key, &p->xsk_fd[qp], 0) :
		  bpf_map_delete_elem(p->map_fd, &key);
	if (rc < 0 && !(rc == -ENOENT && !on)) {
		ax_err("afxdp %s: cannot %s queue %d in the XSKMAP: %s", mpops_port_name(p->port),
		       on ? "put" : "take", key, strerror(-rc));
		return rc;
	}
	return 0;
}

/* Wait until the kernel stops moving the rx and fill rings (after the
 * queues left the map or the program went away): at most 200 ms. */
void afxdp_settle(struct afxdp_port *p)
{
	uint32_t last = 0;

	for (int i = 0; i < 100; i++) {
		uint32_t sum = 0;

		for (uint16_t qp = 0; qp < p->nb_qp; qp++)
			sum += __atomic_load_n(p->cq[qp].rx.producer, __ATOMIC_ACQUIRE) +
			       __atomic_load_n(p->cq[qp].fill.consumer, __ATOMIC_ACQUIRE) +
			       __atomic_load_n(p->cq[qp].comp.producer, __ATOMIC_ACQUIRE);
		if (i > 0 && sum == last)
			return;
		last = sum;
		sleep_ms(2);
	}
}

/* ==== link ============================================================== */

/* 1 up and running, 0 down, -ENODEV gone. */
int afxdp_iface_up(const char *iface)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

	if (s < 0)
		return -errno;
	strlcpy(ifr.ifr_name, iface, sizeof(ifr.ifr_name));
	rc = ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ? -errno :
	     (ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags & IFF_RUNNING);
	close(s);
	return rc;
}

static void link_check(struct afxdp_port *p)
{
	int up = afxdp_iface_up(p->sh->iface) == 1;

	if (!up && !atomic_load(&p->link_lost)) {
		if (mpops_port_is_started(p->port)) {
			if (mpops_port_lost(p->port, "its interface is down: bursts return 0 until it is up again") == 0)
				atomic_store(&p->link_lost, 1);
		} else {
			mpops_port_link_set(p->port, 0);
		}
	} else if (up && atomic_exchange(&p->link_lost, 0)) {
		if (mpops_port_restored(p->port) == 0)
			ax_info("afxdp %s: %s is up again: traffic resumes", mpops_port_name(p->port),
				p->sh->iface);
	} else if (up && !mpops_port_is_started(p->port)) {
		mpops_port_link_set(p->port, 1);
	}
}

/* The monitor: a netlink listener for link changes, and a look every
 * 200 ms in case a message was missed. */
static void *monitor(void *arg)
{
	struct afxdp_port *p = arg;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	char buf[8192];

	if (nl >= 0 && bind(nl, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(nl);
		nl = -1;
	}
	for (;;) {
		struct pollfd pf[2] = { { .fd = p->mon_efd, .events = POLLIN },
					{ .fd = nl, .events = POLLIN } };

		if (poll(pf, nl >= 0 ? 2 : 1, 200) > 0 && (pf[0].revents & POLLIN))
			break;
		while (nl >= 0 && recv(nl, buf, sizeof(buf), 0) > 0)
			;
		link_check(p);
	}
	if (nl >= 0)
		close(nl);
	return NULL;
}

int afxdp_monitor_start(struct afxdp_port *p)
{
	sigset_t all, old;
	int rc;

	if ((p->mon_efd = eventfd(0, EFD_CLOEXEC)) < 0)
		return -errno;
	/* Like the library's own threads: signals go to the application's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&p->mon, NULL, monitor, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		close(p->mon_efd);
		p->mon_efd = -1;
		return -rc;
	}
	pthread_setname_np(p->mon, "mpops-afxdp");
	p->mon_started = 1;
	return 0;
}

void afxdp_monitor_stop(struct afxdp_port *p)
{
	if (p->mon_started) {
		eventfd_write(p->mon_efd, 1);
		pthread_join(p->mon, NULL);
		p->mon_started = 0;
	}
	if (p->mon_efd >= 0)
		close(p->mon_efd);
	p->mon_efd = -1;
}
