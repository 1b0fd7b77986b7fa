/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-vhost, the vhost-user backend, driven from outside: by a tiny
 * frontend written here (memfd memory, split rings laid out by hand, real
 * vhost-user messages on its socket), and by DPDK's virtio_user in
 * dpdk-testpmd when that is installed.
 *
 * The program's path comes from MPOPS_VHOST. Every process started here is
 * ended by pid and every file removed.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "eal_rundir.h"
#include "sendfds.h"
#include "vhost_user.h"

#define TESTPMD "/usr/bin/dpdk-testpmd"

/* ------------------------------------------------------------------ */
/* Processes and files                                                 */
/* ------------------------------------------------------------------ */

struct proc {
	pid_t pid;
	char dir[64];		/* scratch dir: socket, out, err */
	char sock[96];
	char out[96];
	char err[96];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *vhost_path(void)
{
	const char *p = getenv("MPOPS_VHOST");

	cr_assert(p && *p, "MPOPS_VHOST must name the mpops-vhost program");
	return p;
}

/* Started and not yet reaped, and scratch dirs: ended by fini on a failure. */
static pid_t live[8];
static char live_dirs[8][64];

static void live_set(pid_t *slot_of, pid_t pid)
{
	for (unsigned i = 0; i < 8; i++)
		if (live[i] == *slot_of) {
			live[i] = pid;
			return;
		}
}

static void live_dir(const char *dir, bool add)
{
	for (unsigned i = 0; i < 8; i++) {
		if (add && !live_dirs[i][0]) {
			snprintf(live_dirs[i], sizeof(live_dirs[i]), "%s", dir);
			return;
		}
		if (!add && !strcmp(live_dirs[i], dir)) {
			live_dirs[i][0] = '\0';
			return;
		}
	}
}

static void fini(void)
{
	char path[128];

	for (unsigned i = 0; i < 8; i++) {
		if (live[i] > 0) {
			kill(live[i], SIGKILL);
			waitpid(live[i], NULL, 0);
			live[i] = 0;
		}
	}
	for (unsigned i = 0; i < 8; i++) {
		if (!live_dirs[i][0])
			continue;
		static const char *const files[] = { "vh.sock", "out", "err" };

		for (unsigned f = 0; f < 3; f++) {
			snprintf(path, sizeof(path), "%.63s/%s", live_dirs[i], files[f]);
			unlink(path);
		}
		rmdir(live_dirs[i]);
		live_dirs[i][0] = '\0';
	}
}

static pid_t spawn(char *const argv[], const char *out, const char *err)
{
	pid_t pid = fork(), none = 0;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int n = open("/dev/null", O_RDONLY);

		dup2(n, 0);
		dup2(o, 1);
		dup2(e, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	live_set(&none, pid);
	return pid;
}

/* Wait for @pid up to @secs, then SIGKILL it. @return its wait status. */
static int reap(pid_t pid, double secs)
{
	double end = now_s() + secs;
	int st = 0;

	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (now_s() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(10000);
	}
	live_set(&pid, 0);
	return st;
}

static void proc_dir(struct proc *p)
{
	strcpy(p->dir, "/tmp/mpops-vhb-XXXXXX");
	cr_assert_not_null(mkdtemp(p->dir));
	snprintf(p->sock, sizeof(p->sock), "%s/vh.sock", p->dir);
	snprintf(p->out, sizeof(p->out), "%s/out", p->dir);
	snprintf(p->err, sizeof(p->err), "%s/err", p->dir);
	live_dir(p->dir, true);
}

/* Start mpops-vhost on a fresh socket with @extra arguments (NULL-ended). */
static void backend_start(struct proc *p, const char *const *extra)
{
	char *argv[32];
	int n = 0;

	proc_dir(p);
	argv[n++] = (char *)vhost_path();
	argv[n++] = "--socket";
	argv[n++] = p->sock;
	argv[n++] = "--duration";	/* a safety net: it exits by itself */
	argv[n++] = "50";
	for (; extra && *extra && n < 30; extra++)
		argv[n++] = (char *)*extra;
	argv[n] = NULL;
	p->pid = spawn(argv, p->out, p->err);
	for (int i = 0; i < 500 && access(p->sock, F_OK) != 0; i++)
		usleep(10000);
	cr_assert_eq(access(p->sock, F_OK), 0, "mpops-vhost did not create its socket");
}

static size_t read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return n;
}

static void proc_cleanup(struct proc *p)
{
	unlink(p->sock);
	unlink(p->out);
	unlink(p->err);
	rmdir(p->dir);
	live_dir(p->dir, false);
}

/* Open fds of process @pid, from /proc. */
static unsigned count_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	unsigned n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	cr_assert_not_null(d, "%s: %s", path, strerror(errno));
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Wait up to @ms for process @pid to have @want open fds. */
static bool wait_fds(pid_t pid, unsigned want, int ms)
{
	for (int i = 0; i < ms / 10 && count_fds(pid) != want; i++)
		usleep(10000);
	return count_fds(pid) == want;
}

/* Wait up to @ms for the backend's stderr to hold @needle @n times. */
static bool wait_log(const struct proc *p, const char *needle, unsigned n, int ms)
{
	static char err[1 << 16];

	for (int i = 0;; i++) {
		unsigned seen = 0;

		read_file(p->err, err, sizeof(err));
		for (const char *s = strstr(err, needle); s; s = strstr(s + 1, needle))
			seen++;
		if (seen >= n)
			return true;
		if (i >= ms / 10)
			return false;
		usleep(10000);
	}
}

/* Fail the test, saying how, if the backend has died. */
static void backend_assert_alive(struct proc *p)
{
	int st = 0;

	if (waitpid(p->pid, &st, WNOHANG) != p->pid)
		return;
	live_set(&p->pid, 0);
	cr_assert_fail("mpops-vhost died: %s %d", WIFSIGNALED(st) ? "signal" : "exit status",
		       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

/*
 * SIGTERM the backend, check it exits 0 and removes its socket; leave its
 * final JSON line in @json and its stderr in @err.
 */
static void backend_stop(struct proc *p, char *json, size_t jlen, char *err, size_t elen)
{
	static char out[1 << 16];
	char *line;
	int st;

	kill(p->pid, SIGTERM);
	st = reap(p->pid, 5);
	read_file(p->out, out, sizeof(out));
	read_file(p->err, err, elen);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mpops-vhost exit status 0x%x\n%s", st,
		  err);
	cr_assert_neq(access(p->sock, F_OK), 0, "mpops-vhost left its socket behind");
	cr_assert_null(strstr(err, "runtime error"), "sanitizer report:\n%s", err);
	cr_assert_null(strstr(err, "Sanitizer"), "sanitizer report:\n%s", err);
	line = strrchr(out, '{');
	cr_assert_not_null(line, "no JSON in mpops-vhost output:\n%s", out);
	snprintf(json, jlen, "%s", line);
	proc_cleanup(p);
}

/* Each of the @n lines is somewhere in the backend's log @err. */
static void expect_in_log(const char *err, const char *const *lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_expect_not_null(strstr(err, lines[i]), "no '%s' in the log:\n%s", lines[i], err);
}

static uint64_t json_u64(const char *json, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\": ", key);
	p = strstr(json, k);
	cr_assert_not_null(p, "no %s in %s", key, json);
	return strtoull(p + strlen(k), NULL, 10);
}

/* Element @i of the "kicks" array. */
static uint64_t json_kicks(const char *json, unsigned i)
{
	const char *p = strstr(json, "\"kicks\": [");

	cr_assert_not_null(p);
	p += strlen("\"kicks\": [");
	while (i--) {
		p = strchr(p, ',');
		cr_assert_not_null(p);
		p++;
	}
	return strtoull(p, NULL, 10);
}

/* ------------------------------------------------------------------ */
/* A tiny frontend                                                     */
/* ------------------------------------------------------------------ */

#define FE_MEM (4u << 20)
#define FE_GPA 0x80000000ull	/* guest-physical base of our one region */
#define FE_NUM 64u
#define FE_BUF 2048u

struct fe_ring {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t off;		/* ring memory offset */
	uint16_t avail_idx;	/* next avail slot we fill */
	uint16_t used_seen;
	int kick, call;
	unsigned kicks;		/* eventfd writes */
};

struct fe {
	int sock;
	int memfd;
	uint8_t *mem;
	uint64_t features;
	struct fe_ring r[2];	/* rx 0, tx 0 */
};

static uint64_t gpa_of(const struct fe *fe, const void *p)
{
	return FE_GPA + (uint64_t)((const uint8_t *)p - fe->mem);
}

static uint8_t *buf_of(struct fe *fe, unsigned q, unsigned i)
{
	return fe->mem + 0x100000 + q * 0x100000 + (i % FE_NUM) * FE_BUF;
}

/* The most fds the kernel passes with one message (SCM_MAX_FD). */
#define FE_MAX_FDS SENDFDS_MAX

/* Send a request with exactly these header @flags (version bits included). */
static void fe_send_raw(struct fe *fe, uint32_t req, uint32_t flags, const void *payload,
			uint32_t size, const int *fds, unsigned nfds)
{
	struct vhost_user_hdr hdr = { .request = req, .flags = flags, .size = size };
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = payload ? size : 0 },
	};

	cr_assert_leq(nfds, FE_MAX_FDS);
	cr_assert_eq(sendmsg_fds(fe->sock, iov, 2, fds, nfds, MSG_NOSIGNAL),
		     (ssize_t)(sizeof(hdr) + iov[1].iov_len), "sendmsg request %u: %s", req,
		     strerror(errno));
}

static void fe_send(struct fe *fe, uint32_t req, uint32_t flags, const void *payload,
		    uint32_t size, const int *fds, unsigned nfds)
{
	fe_send_raw(fe, req, VHOST_USER_VERSION | flags, payload, size, fds, nfds);
}

/* A reply to @req within 2 s; its payload (up to 8 bytes) in *val. */
static int fe_reply(struct fe *fe, uint32_t req, uint64_t *val)
{
	struct vhost_user_hdr hdr;
	struct pollfd pfd = { .fd = fe->sock, .events = POLLIN };
	uint8_t payload[264];

	if (poll(&pfd, 1, 2000) != 1)
		return -ETIMEDOUT;
	if (recv(fe->sock, &hdr, sizeof(hdr), MSG_WAITALL) != (ssize_t)sizeof(hdr))
		return -ECONNRESET;
	cr_assert_eq(hdr.request, req);
	cr_assert_eq(hdr.flags, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY);
	cr_assert_leq(hdr.size, sizeof(payload));
	if (hdr.size)
		cr_assert_eq(recv(fe->sock, payload, hdr.size, MSG_WAITALL), (ssize_t)hdr.size);
	*val = 0;
	memcpy(val, payload, hdr.size < 8 ? hdr.size : 8);
	return 0;
}

static uint64_t fe_get(struct fe *fe, uint32_t req)
{
	uint64_t v;

	fe_send(fe, req, 0, NULL, 0, NULL, 0);
	cr_assert_eq(fe_reply(fe, req, &v), 0, "no reply to request %u", req);
	return v;
}

/* Send with NEED_REPLY; @return the backend's ack (0 = success). */
static uint64_t fe_acked(struct fe *fe, uint32_t req, const void *payload, uint32_t size,
			 const int *fds, unsigned nfds)
{
	uint64_t v;

	fe_send(fe, req, VHOST_USER_FLAG_NEED_REPLY, payload, size, fds, nfds);
	cr_assert_eq(fe_reply(fe, req, &v), 0, "no ack to request %u", req);
	return v;
}

static void fe_connect(struct fe *fe, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	/* The socket file appears at bind(), a moment before listen(). */
	for (int i = 0;; i++) {
		fe->sock = socket(AF_UNIX, SOCK_STREAM, 0);
		cr_assert_geq(fe->sock, 0);
		if (connect(fe->sock, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		cr_assert(errno == ECONNREFUSED && i < 500, "connect: %s", strerror(errno));
		close(fe->sock);
		usleep(10000);
	}
}

static void fe_mem(struct fe *fe)
{
	fe->memfd = memfd_create("vhb-test", MFD_CLOEXEC);
	cr_assert_geq(fe->memfd, 0);
	cr_assert_eq(ftruncate(fe->memfd, FE_MEM), 0);
	fe->mem = mmap(NULL, FE_MEM, PROT_READ | PROT_WRITE, MAP_SHARED, fe->memfd, 0);
	cr_assert_neq(fe->mem, MAP_FAILED);
	for (unsigned q = 0; q < 2; q++) {
		struct fe_ring *r = &fe->r[q];

		r->off = q * 0x10000;
		r->desc = (void *)(fe->mem + r->off);
		r->avail = (void *)(fe->mem + r->off + 0x2000);
		r->used = (void *)(fe->mem + r->off + 0x4000);
		r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		r->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		cr_assert(r->kick >= 0 && r->call >= 0);
	}
}

static void fe_mem_table(struct fe *fe)
{
	struct vhost_user_memory m = {
		.nregions = 1,
		.regions[0] = { .guest_phys_addr = FE_GPA, .memory_size = FE_MEM,
				.userspace_addr = (uint64_t)(uintptr_t)fe->mem, .mmap_offset = 0 },
	};

	cr_assert_eq(fe_acked(fe, VHOST_USER_SET_MEM_TABLE, &m, 8 + sizeof(m.regions[0]),
			      &fe->memfd, 1), 0);
}

/* The whole hand-shake, as QEMU or DPDK would do it. */
static void fe_setup(struct fe *fe, const char *path, uint64_t want)
{
	uint64_t offered, pf;

	memset(fe, 0, sizeof(*fe));
	fe_connect(fe, path);
	fe_mem(fe);
	offered = fe_get(fe, VHOST_USER_GET_FEATURES);
	cr_assert(offered & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	fe->features = (offered & want) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	fe_send(fe, VHOST_USER_SET_OWNER, 0, NULL, 0, NULL, 0);
	pf = fe_get(fe, VHOST_USER_GET_PROTOCOL_FEATURES);
	cr_assert(pf & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
	pf &= (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | (1ull << VHOST_USER_PROTOCOL_F_MQ);
	fe_send(fe, VHOST_USER_SET_PROTOCOL_FEATURES, 0, &pf, 8, NULL, 0);
	cr_assert_eq(fe_get(fe, VHOST_USER_GET_QUEUE_NUM), 1);
	cr_assert_eq(fe_acked(fe, VHOST_USER_SET_FEATURES, &fe->features, 8, NULL, 0), 0);
	fe_mem_table(fe);
	for (uint32_t q = 0; q < 2; q++) {
		struct fe_ring *r = &fe->r[q];
		struct vhost_user_vring_state num = { q, FE_NUM }, base = { q, 0 }, en = { q, 1 };
		struct vhost_user_vring_addr a = {
			.index = q,
			.desc_user_addr = (uint64_t)(uintptr_t)r->desc,
			.avail_user_addr = (uint64_t)(uintptr_t)r->avail,
			.used_user_addr = (uint64_t)(uintptr_t)r->used,
		};
		uint64_t idx = q;

		cr_assert_eq(fe_acked(fe, VHOST_USER_SET_VRING_NUM, &num, 8, NULL, 0), 0);
		cr_assert_eq(fe_acked(fe, VHOST_USER_SET_VRING_BASE, &base, 8, NULL, 0), 0);
		cr_assert_eq(fe_acked(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
		cr_assert_eq(fe_acked(fe, VHOST_USER_SET_VRING_KICK, &idx, 8, &r->kick, 1), 0);
		cr_assert_eq(fe_acked(fe, VHOST_USER_SET_VRING_CALL, &idx, 8, &r->call, 1), 0);
		cr_assert_eq(fe_acked(fe, VHOST_USER_SET_VRING_ENABLE, &en, 8, NULL, 0), 0);
	}
}

static void fe_close(struct fe *fe)
{
	close(fe->sock);
	for (unsigned q = 0; q < 2; q++) {
		close(fe->r[q].kick);
		close(fe->r[q].call);
	}
	munmap(fe->mem, FE_MEM);
	close(fe->memfd);
}

static bool fe_has(const struct fe *fe, unsigned bit)
{
	return (fe->features >> bit) & 1;
}

/* Publish what was added to ring @q; kick if the backend asks (or @force). */
static void fe_publish(struct fe *fe, unsigned q, uint16_t old, bool force)
{
	struct fe_ring *r = &fe->r[q];
	uint64_t one = 1;
	bool kick;

	__atomic_store_n(&r->avail->idx, r->avail_idx, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (fe_has(fe, VIRTIO_RING_F_EVENT_IDX))
		kick = vring_need_event(__atomic_load_n((uint16_t *)((char *)r->used + 4 +
								    8 * FE_NUM),
							__ATOMIC_RELAXED),
					r->avail_idx, old);
	else
		kick = !(__atomic_load_n(&r->used->flags, __ATOMIC_RELAXED) &
			 VRING_USED_F_NO_NOTIFY);
	if (kick || force) {
		cr_assert_eq(write(r->kick, &one, 8), 8);
		r->kicks++;
	}
}

/* Post @n empty rx buffers of @len bytes. */
static void fe_rx_post(struct fe *fe, unsigned n, uint32_t len)
{
	struct fe_ring *r = &fe->r[0];
	uint16_t old = r->avail_idx;

	for (unsigned i = 0; i < n; i++) {
		uint16_t id = r->avail_idx % FE_NUM;

		r->desc[id] = (struct vring_desc){ gpa_of(fe, buf_of(fe, 0, id)), len,
						   VRING_DESC_F_WRITE, 0 };
		r->avail->ring[r->avail_idx % FE_NUM] = id;
		r->avail_idx++;
	}
	fe_publish(fe, 0, old, false);
}

/* Put one packet on tx: header and data in two chained descriptors. */
static void fe_tx_add(struct fe *fe, const uint8_t *data, uint32_t len)
{
	struct fe_ring *r = &fe->r[1];
	uint16_t id = (uint16_t)(2 * r->avail_idx) % FE_NUM;
	uint8_t *h = buf_of(fe, 1, id), *d = buf_of(fe, 1, id + 1);

	memset(h, 0, 12);
	memcpy(d, data, len);
	r->desc[id] = (struct vring_desc){ gpa_of(fe, h), 12, VRING_DESC_F_NEXT,
					   (uint16_t)(id + 1) };
	r->desc[id + 1] = (struct vring_desc){ gpa_of(fe, d), len, 0, 0 };
	r->avail->ring[r->avail_idx % FE_NUM] = id;
	r->avail_idx++;
}

static uint16_t used_idx(const struct fe *fe, unsigned q)
{
	return __atomic_load_n(&fe->r[q].used->idx, __ATOMIC_ACQUIRE);
}

static bool wait_used(const struct fe *fe, unsigned q, uint16_t want, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (used_idx(fe, q) == want)
			return true;
		usleep(1000);
	}
	return used_idx(fe, q) == want;
}

static void fill_pattern(uint8_t *p, uint32_t len, unsigned seed)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7);
}

/* Check rx used entry @slot holds one packet of @len bytes from @seed. */
static void check_rx(struct fe *fe, uint16_t slot, uint32_t len, unsigned seed)
{
	struct vring_used_elem e = fe->r[0].used->ring[slot % FE_NUM];
	struct virtio_net_hdr_mrg_rxbuf h;
	uint8_t want[FE_BUF];

	cr_assert_eq(e.len, 12 + len, "used len %u, want %u", e.len, 12 + len);
	memcpy(&h, buf_of(fe, 0, e.id), sizeof(h));
	cr_assert_eq(h.num_buffers, 1);
	fill_pattern(want, len, seed);
	cr_assert_eq(memcmp(buf_of(fe, 0, e.id) + 12, want, len), 0, "payload %u differs", seed);
}

/*
 * Post 4 rx buffers, send one packet of @len bytes (pattern @seed) on tx and
 * check that it comes back in the next rx used entry: the rings work @when.
 */
static void fe_loop_one(struct fe *fe, uint32_t len, unsigned seed, const char *when)
{
	uint16_t tx_old = fe->r[1].avail_idx, rx_want = (uint16_t)(used_idx(fe, 0) + 1);
	uint8_t pkt[FE_BUF];

	cr_assert_leq(len, sizeof(pkt));
	fe_rx_post(fe, 4, FE_BUF);
	fill_pattern(pkt, len, seed);
	fe_tx_add(fe, pkt, len);
	fe_publish(fe, 1, tx_old, false);
	cr_assert(wait_used(fe, 0, rx_want, 3000), "no loopback %s: rx used index %u", when,
		  used_idx(fe, 0));
	check_rx(fe, (uint16_t)(rx_want - 1), len, seed);
}

/* ------------------------------------------------------------------ */
/* The program on its own                                              */
/* ------------------------------------------------------------------ */

TestSuite(vhost_backend, .fini = fini, .timeout = 60);

/*
 * Run mpops-vhost with @args (NULL-ended) to its end, 5 s at most: its
 * stdout into @out, its stderr into @err (@len bytes each).
 * @return its wait status.
 */
static int run_once(const char *const *args, char *out, char *err, size_t len)
{
	char *argv[16];
	struct proc p;
	int n = 0, st;

	argv[n++] = (char *)vhost_path();
	for (; *args && n < 15; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	proc_dir(&p);
	p.pid = spawn(argv, p.out, p.err);
	st = reap(p.pid, 5);
	read_file(p.out, out, len);
	read_file(p.err, err, len);
	proc_cleanup(&p);
	return st;
}

Test(vhost_backend, help_exits_zero)
{
	static const char *const args[] = { "--help", NULL };
	static char out[8192], err[8192];
	int st = run_once(args, out, err, sizeof(out));

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_not_null(strstr(out, "--kick-driven"));
	cr_assert_not_null(strstr(out, "--no-mrg-rxbuf"));
	cr_assert_not_null(strstr(out, "--client"));
	cr_assert_not_null(strstr(out, "--cross"));
}

Test(vhost_backend, cross_is_a_variant_of_loopback_only)
{
	/* Refused before the socket is made. */
	static const char *const args[] = { "--socket", "never.sock", "--mode", "sink", "--cross",
					    NULL };
	static char out[8192], err[8192];
	int st = run_once(args, out, err, sizeof(out));

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %#x:\n%s", st, err);
	cr_assert_not_null(strstr(err, "mpops-vhost: --cross is a variant of loopback: use it with --mode loopback\n"),
			   "%s", err);
}

Test(vhost_backend, loopback_of_packets_end_to_end)
{
	static const char *const args[] = { "--mode", "loopback", NULL };
	static const uint32_t sizes[] = { 60, 64, 128, 1000, 1514 };
	static char json[1024], err[1 << 16];
	uint8_t pkt[4096];
	struct proc p;
	struct fe fe;

	backend_start(&p, args);
	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF |
		 1ull << VIRTIO_RING_F_EVENT_IDX | 1ull << VIRTIO_F_IN_ORDER);
	cr_assert(fe_has(&fe, VIRTIO_NET_F_MRG_RXBUF));
	fe_rx_post(&fe, 8, FE_BUF);
	for (unsigned i = 0; i < 5; i++) {
		fill_pattern(pkt, sizes[i], i);
		fe_tx_add(&fe, pkt, sizes[i]);
	}
	fe_publish(&fe, 1, 0, false);
	cr_assert(wait_used(&fe, 1, 5, 3000), "tx used index %u", used_idx(&fe, 1));
	cr_assert(wait_used(&fe, 0, 5, 3000), "rx used index %u", used_idx(&fe, 0));
	for (unsigned i = 0; i < 5; i++)
		check_rx(&fe, (uint16_t)i, sizes[i], i);

	/* 3000 bytes into 2048-byte buffers: two of them, num_buffers 2. */
	fill_pattern(pkt, 3000, 9);
	fe_tx_add(&fe, pkt, 3000);
	fe_publish(&fe, 1, 5, false);
	cr_assert(wait_used(&fe, 0, 7, 3000), "rx used index %u", used_idx(&fe, 0));
	{
		struct vring_used_elem a = fe.r[0].used->ring[5], b = fe.r[0].used->ring[6];
		struct virtio_net_hdr_mrg_rxbuf h;
		uint8_t got[3000];

		memcpy(&h, buf_of(&fe, 0, a.id), sizeof(h));
		cr_assert_eq(h.num_buffers, 2);
		cr_assert_eq(a.len, FE_BUF);
		cr_assert_eq(b.len, 3012 - FE_BUF);
		memcpy(got, buf_of(&fe, 0, a.id) + 12, FE_BUF - 12);
		memcpy(got + FE_BUF - 12, buf_of(&fe, 0, b.id), 3000 - (FE_BUF - 12));
		cr_assert_eq(memcmp(got, pkt, 3000), 0);
	}
	fe_close(&fe);
	backend_stop(&p, json, sizeof(json), err, sizeof(err));
	cr_assert_eq(json_u64(json, "received_packets"), 6, "%s", json);
	cr_assert_eq(json_u64(json, "sent_packets"), 6, "%s", json);
	cr_assert_eq(json_u64(json, "received_bytes"), 60 + 64 + 128 + 1000 + 1514 + 3000);
	cr_assert_eq(json_u64(json, "errors"), 0, "%s\n%s", json, err);
	cr_assert_eq(json_u64(json, "drops"), 0);
}

/*
 * Kick-driven: packets posted without a kick wait; the kick gets them
 * served; every kick we wrote is counted on the queue we wrote it to.
 */
static void kick_driven_case(bool event_idx)
{
	static const char *const args_ev[] = { "--kick-driven", NULL };
	static const char *const args_noev[] = { "--kick-driven", "--no-event-idx", NULL };
	static char json[1024], err[1 << 16];
	uint8_t pkt[256];
	uint64_t calls = 0, v;
	struct proc p;
	struct fe fe;

	backend_start(&p, event_idx ? args_ev : args_noev);
	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF |
		 1ull << VIRTIO_RING_F_EVENT_IDX | 1ull << VIRTIO_F_IN_ORDER);
	cr_assert_eq(fe_has(&fe, VIRTIO_RING_F_EVENT_IDX), event_idx);
	usleep(100000);		/* let it reach its wait, notifications on */
	fe_rx_post(&fe, 16, FE_BUF);
	cr_assert_eq(fe.r[0].kicks, 1, "the backend should ask for rx kicks");

	for (unsigned i = 0; i < 3; i++) {
		fill_pattern(pkt, 100, i);
		fe_tx_add(&fe, pkt, 100);
	}
	__atomic_store_n(&fe.r[1].avail->idx, fe.r[1].avail_idx, __ATOMIC_RELEASE);
	usleep(300000);
	cr_assert_eq(used_idx(&fe, 1), 0, "served without a kick");
	cr_assert_eq(write(fe.r[1].kick, &(uint64_t){ 1 }, 8), 8);
	fe.r[1].kicks++;
	cr_assert(wait_used(&fe, 1, 3, 3000), "tx used index %u", used_idx(&fe, 1));
	cr_assert(wait_used(&fe, 0, 3, 3000), "rx used index %u", used_idx(&fe, 0));

	/* It asked for kicks again; two more packets, kicked as it asks. */
	for (unsigned i = 3; i < 5; i++) {
		fill_pattern(pkt, 100, i);
		fe_tx_add(&fe, pkt, 100);
		fe_publish(&fe, 1, (uint16_t)(fe.r[1].avail_idx - 1), false);
		cr_assert(wait_used(&fe, 1, (uint16_t)(i + 1), 3000), "packet %u not served", i);
	}
	/* The third may be saved: the backend re-checks after re-enabling. */
	cr_assert_geq(fe.r[1].kicks, 2);
	cr_assert(wait_used(&fe, 0, 5, 3000));
	for (unsigned i = 0; i < 5; i++)
		check_rx(&fe, (uint16_t)i, 100, i);
	/* We never set NO_INTERRUPT or moved used_event: it called us. */
	if (read(fe.r[0].call, &v, 8) == 8)
		calls += v;
	cr_assert_gt(calls, 0);

	fe_close(&fe);
	backend_stop(&p, json, sizeof(json), err, sizeof(err));
	cr_assert_eq(json_kicks(json, 0), fe.r[0].kicks, "%s", json);
	cr_assert_eq(json_kicks(json, 1), fe.r[1].kicks, "%s", json);
	cr_assert_eq(json_u64(json, "received_packets"), 5);
	cr_assert_eq(json_u64(json, "sent_packets"), 5);
	cr_assert_geq(json_u64(json, "calls"), calls);
	cr_assert_eq(json_u64(json, "errors"), 0, "%s\n%s", json, err);
}

Test(vhost_backend, kick_driven_serves_kicked_queues_with_event_idx)
{
	kick_driven_case(true);
}

Test(vhost_backend, kick_driven_serves_kicked_queues_with_flags)
{
	kick_driven_case(false);
}

/* ------------------------------------------------------------------ */
/* Malformed input                                                     */
/* ------------------------------------------------------------------ */

static uint64_t bad_mem_table(struct fe *fe, uint32_t nregions, uint32_t size, uint64_t msize,
			      const int *fds, unsigned nfds)
{
	struct vhost_user_memory m = { .nregions = nregions };

	m.regions[0] = (struct vhost_user_mem_region){ FE_GPA, msize, 0x1000, 0 };
	return fe_acked(fe, VHOST_USER_SET_MEM_TABLE, &m, size, fds, nfds);
}

Test(vhost_backend, malformed_messages_and_descriptors_are_survived)
{
	static const char *const args[] = { "--mode", "loopback", NULL };
	static const char *const expect[] = {
		"unknown request 55", "SET_VRING_NUM: bad size 4", "bad vring index 99",
		"too many regions", "region fd missing", "unmappable", "beyond the end",
		"SET_VRING_KICK: queue 1: fd missing", "oversized message",
		"outside the memory table", "+ length 4096 overflows", "longer than the ring (loop)",
		"head index 1000 out of range", "device-writable in a tx queue",
		"next index 64 out of range",
		"frontend disconnected",
	};
	static char json[1024], err[1 << 16];
	struct vhost_user_vring_state st;
	struct vhost_user_hdr big = { VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, 100000 };
	uint8_t pkt[64], junk[16];
	struct fe fe;
	struct proc p;
	uint64_t v, kick_q1 = 1;
	int pipefd[2], small;

	backend_start(&p, args);

	/* A frontend that goes away in the middle of the hand-shake. */
	memset(&fe, 0, sizeof(fe));
	fe_connect(&fe, p.sock);
	fe_mem(&fe);
	fe_get(&fe, VHOST_USER_GET_FEATURES);
	fe_send(&fe, VHOST_USER_SET_OWNER, 0, NULL, 0, NULL, 0);
	fe_close(&fe);

	/* Bad messages, each answered with a failure ack. */
	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF);
	cr_assert_eq(fe_acked(&fe, 55, NULL, 0, NULL, 0), 1);
	cr_assert_eq(fe_acked(&fe, VHOST_USER_SET_VRING_NUM, &(uint32_t){ 0 }, 4, NULL, 0), 1);
	st = (struct vhost_user_vring_state){ 99, 64 };
	cr_assert_eq(fe_acked(&fe, VHOST_USER_SET_VRING_NUM, &st, 8, NULL, 0), 1);
	cr_assert_eq(bad_mem_table(&fe, 9, 8, FE_MEM, NULL, 0), 1);
	cr_assert_eq(bad_mem_table(&fe, 1, 40, FE_MEM, NULL, 0), 1);
	cr_assert_eq(pipe(pipefd), 0);
	cr_assert_eq(bad_mem_table(&fe, 1, 40, FE_MEM, &pipefd[0], 1), 1);
	small = memfd_create("vhb-small", MFD_CLOEXEC);
	cr_assert_eq(ftruncate(small, 4096), 0);
	cr_assert_eq(bad_mem_table(&fe, 1, 40, FE_MEM, &small, 1), 1);
	close(small);
	close(pipefd[0]);
	close(pipefd[1]);
	cr_assert_eq(fe_acked(&fe, VHOST_USER_SET_VRING_KICK, &kick_q1, 8, NULL, 0), 1);
	st = (struct vhost_user_vring_state){ 200, 0 };
	fe_send(&fe, VHOST_USER_GET_VRING_BASE, 0, &st, 8, NULL, 0);
	cr_assert_eq(fe_reply(&fe, VHOST_USER_GET_VRING_BASE, &v), 0);
	/* The rings still work after all that (GET_VRING_BASE stopped none). */
	fe_rx_post(&fe, 4, FE_BUF);
	memset(pkt, 0xab, sizeof(pkt));
	fe_tx_add(&fe, pkt, sizeof(pkt));
	fe_publish(&fe, 1, 0, false);
	cr_assert(wait_used(&fe, 0, 1, 3000), "loopback after bad messages");

	/* More payload than any request has: the backend hangs up. */
	cr_assert_eq(send(fe.sock, &big, sizeof(big), MSG_NOSIGNAL), (ssize_t)sizeof(big));
	{
		struct pollfd pfd = { .fd = fe.sock, .events = POLLIN };

		cr_assert_eq(poll(&pfd, 1, 3000), 1);
		cr_assert_eq(recv(fe.sock, junk, sizeof(junk), 0), 0, "still connected");
	}
	fe_close(&fe);

	/* A new session: bad descriptors on tx, then a good packet. */
	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF);
	{
		struct fe_ring *r = &fe.r[1];
		uint64_t base = gpa_of(&fe, buf_of(&fe, 1, 0));

		r->desc[0] = (struct vring_desc){ 0xdead0000, 64, 0, 0 };
		r->desc[1] = (struct vring_desc){ ~0ull - 0xff, 0x1000, 0, 0 };
		r->desc[2] = (struct vring_desc){ base, 64, VRING_DESC_F_NEXT, 3 };
		r->desc[3] = (struct vring_desc){ base, 64, VRING_DESC_F_NEXT, 2 };
		r->desc[4] = (struct vring_desc){ base, 64, VRING_DESC_F_WRITE, 0 };
		r->desc[5] = (struct vring_desc){ base, 0xffffffffu, 0, 0 };
		r->desc[6] = (struct vring_desc){ base, 64, VRING_DESC_F_NEXT, 64 };
		for (unsigned i = 0; i < 7; i++)
			r->avail->ring[i] = (uint16_t)i;
		r->avail->ring[3] = 1000;
		r->avail_idx = 7;
		fe_publish(&fe, 1, 0, false);
		cr_assert(wait_used(&fe, 1, 7, 3000), "bad buffers not returned: used %u",
			  used_idx(&fe, 1));
		for (unsigned i = 0; i < 7; i++)
			cr_assert_eq(r->used->ring[i].len, 0);
	}
	/* fe_tx_add lays packets from descriptor 2 * avail slot on: 14, 15. */
	fe_loop_one(&fe, 64, 7, "after bad descriptors");
	fe_close(&fe);

	backend_stop(&p, json, sizeof(json), err, sizeof(err));
	expect_in_log(err, expect, sizeof(expect) / sizeof(expect[0]));
	cr_assert_geq(json_u64(json, "errors"), 16, "%s", json);
	cr_assert_eq(json_u64(json, "connections"), 3, "%s", json);
	cr_assert_eq(json_u64(json, "sent_packets"), 2, "%s", json);
}

/*
 * A frontend that shrinks the file behind its memory table after sending it
 * (nothing stops it: the memfd need not be sealed) turns our next access to
 * the lost pages into SIGBUS, whether it copies a packet, polls a ring or
 * sets a ring up. The backend survives it: one line, one error counted, the
 * memory table dropped and the rings stopped until a new table comes; the
 * connection goes on, and so do the next frontends.
 */
Test(vhost_backend, memory_truncated_by_the_frontend_stops_its_rings_not_the_backend)
{
	static const char *const args[] = { "--mode", "loopback", NULL };
	static const char *const lost = "is gone: the frontend shrank the file behind it";
	static char json[1024], err[1 << 16];
	struct vhost_user_vring_state st;
	uint8_t pkt[100];
	uint64_t v;
	bool ok;
	struct proc p;
	struct fe fe;

	backend_start(&p, args);

	/* Buffers (from 1 MiB on) cut off, rings (below) kept: a fault while copying. */
	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1);
	fe_rx_post(&fe, 4, FE_BUF);
	fill_pattern(pkt, sizeof(pkt), 1);
	fe_tx_add(&fe, pkt, sizeof(pkt));
	cr_assert_eq(ftruncate(fe.memfd, 0x100000), 0);
	fe_publish(&fe, 1, 0, false);
	ok = wait_log(&p, lost, 1, 3000);
	backend_assert_alive(&p);
	cr_assert(ok, "no line about the lost memory; the backend said:\n%s",
		  (read_file(p.err, err, sizeof(err)), err));
	fe_get(&fe, VHOST_USER_GET_FEATURES);
	cr_assert_eq(used_idx(&fe, 1), 0, "a packet from lost memory was returned");
	/* The memory back and a new table: the rings go on where they stopped. */
	cr_assert_eq(ftruncate(fe.memfd, FE_MEM), 0);
	memcpy(buf_of(&fe, 1, 1), pkt, sizeof(pkt));
	fe_mem_table(&fe);
	cr_assert(wait_used(&fe, 1, 1, 3000), "tx used index %u after a new table", used_idx(&fe, 1));
	cr_assert(wait_used(&fe, 0, 1, 3000), "rx used index %u after a new table", used_idx(&fe, 0));
	check_rx(&fe, 0, sizeof(pkt), 1);
	fe_close(&fe);

	/* All of it cut off while the backend polls the rings: a fault reading them. */
	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1);
	cr_assert_eq(ftruncate(fe.memfd, 0), 0);
	ok = wait_log(&p, lost, 2, 3000);
	backend_assert_alive(&p);
	cr_assert(ok, "no line about the lost rings");
	fe_close(&fe);

	/* A ring restarted over memory already gone: a fault in the control path. */
	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1);
	st = (struct vhost_user_vring_state){ 1, 0 };
	fe_send(&fe, VHOST_USER_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0);
	cr_assert_eq(fe_reply(&fe, VHOST_USER_GET_VRING_BASE, &v), 0);
	cr_assert_eq(ftruncate(fe.memfd, 0), 0);
	v = 1;
	cr_assert_eq(fe_acked(&fe, VHOST_USER_SET_VRING_KICK, &v, 8, &fe.r[1].kick, 1), 0);
	ok = wait_log(&p, lost, 3, 3000);
	backend_assert_alive(&p);
	cr_assert(ok, "no line about the lost rings at restart");
	fe_close(&fe);

	/* The next frontend is served as if nothing had happened. */
	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1);
	fe_loop_one(&fe, 100, 2, "for the next frontend");
	fe_close(&fe);

	backend_stop(&p, json, sizeof(json), err, sizeof(err));
	cr_assert_eq(json_u64(json, "errors"), 3, "%s\n%s", json, err);
	cr_assert_eq(json_u64(json, "connections"), 4, "%s", json);
	cr_assert_eq(json_u64(json, "sent_packets"), 2, "%s", json);
}

/*
 * A frontend may point an rx buffer into the very tx buffer it loops back:
 * here the packet's bytes go 5 bytes past where they are read from. The
 * copy must be a memmove (memcpy on overlapping buffers is undefined; ASan
 * reports memcpy-param-overlap), and the packet arrives intact.
 */
Test(vhost_backend, loopback_into_a_buffer_overlapping_the_packet_copies_it_intact)
{
	static const char *const args[] = { "--mode", "loopback", NULL };
	static char json[1024], err[1 << 16];
	struct fe_ring *rx;
	uint8_t pkt[200], *data;
	struct proc p;
	struct fe fe;

	backend_start(&p, args);
	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1);
	fill_pattern(pkt, sizeof(pkt), 5);
	fe_tx_add(&fe, pkt, sizeof(pkt));	/* header in tx buffer 0, data in 1 */
	data = buf_of(&fe, 1, 1);
	rx = &fe.r[0];
	rx->desc[0] = (struct vring_desc){ gpa_of(&fe, buf_of(&fe, 0, 0)), 12,
					   VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1 };
	rx->desc[1] = (struct vring_desc){ gpa_of(&fe, data) + 5, FE_BUF, VRING_DESC_F_WRITE, 0 };
	rx->avail->ring[0] = 0;
	rx->avail_idx = 1;
	fe_publish(&fe, 0, 0, false);
	fe_publish(&fe, 1, 0, false);
	cr_assert(wait_used(&fe, 0, 1, 3000), "rx used index %u; the backend said:\n%s",
		  used_idx(&fe, 0), (read_file(p.err, err, sizeof(err)), err));
	cr_assert_eq(rx->used->ring[0].len, 12 + sizeof(pkt));
	cr_assert_eq(memcmp(data + 5, pkt, sizeof(pkt)), 0, "the packet changed while copied");
	fe_close(&fe);

	backend_stop(&p, json, sizeof(json), err, sizeof(err));
	cr_assert_eq(json_u64(json, "sent_packets"), 1, "%s\n%s", json, err);
	cr_assert_eq(json_u64(json, "errors"), 0, "%s\n%s", json, err);
}

/*
 * Mergeable rx buffers whose sizes add up past 4 GiB (a chain of four 1 GiB
 * descriptors, all over one sparse 1 GiB memfd, after a 1-byte buffer): the
 * sum must not wrap, or the backend takes a buffer more than the packet
 * needs and reports a length it never wrote.
 */
Test(vhost_backend, rx_buffers_adding_up_past_4_gib_are_counted_without_wrapping)
{
	static const char *const args[] = { "--mode", "loopback", NULL };
	static char json[1024], err[1 << 16];
	const uint64_t big_gpa = 0x100000000ull, big_size = 1ull << 30;
	struct virtio_net_hdr_mrg_rxbuf h;
	struct vhost_user_memory m;
	struct fe_ring *rx;
	uint8_t pkt[100], *big;
	int fds[2];
	struct proc p;
	struct fe fe;

	backend_start(&p, args);
	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MRG_RXBUF);
	fds[0] = fe.memfd;
	fds[1] = memfd_create("vhb-big", MFD_CLOEXEC);
	cr_assert_geq(fds[1], 0);
	cr_assert_eq(ftruncate(fds[1], (off_t)big_size), 0);
	big = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fds[1], 0);
	cr_assert_neq(big, MAP_FAILED);
	memset(&m, 0, sizeof(m));
	m.nregions = 2;
	m.regions[0] = (struct vhost_user_mem_region){ FE_GPA, FE_MEM,
						       (uint64_t)(uintptr_t)fe.mem, 0 };
	/* A frontend address of its own, which no ring uses. */
	m.regions[1] = (struct vhost_user_mem_region){ big_gpa, big_size, 1ull << 46, 0 };
	cr_assert_eq(fe_acked(&fe, VHOST_USER_SET_MEM_TABLE, &m, 8 + 2 * sizeof(m.regions[0]),
			      fds, 2), 0);

	rx = &fe.r[0];
	rx->desc[0] = (struct vring_desc){ gpa_of(&fe, buf_of(&fe, 0, 0)), 1, VRING_DESC_F_WRITE, 0 };
	for (uint16_t i = 1; i <= 4; i++)
		rx->desc[i] = (struct vring_desc){ big_gpa, i < 4 ? 0x40000000u : 0x3fffffffu,
						   VRING_DESC_F_WRITE | (i < 4 ? VRING_DESC_F_NEXT : 0),
						   (uint16_t)(i + 1) };
	rx->desc[5] = (struct vring_desc){ gpa_of(&fe, buf_of(&fe, 0, 5)), FE_BUF,
					   VRING_DESC_F_WRITE, 0 };
	rx->avail->ring[0] = 0;
	rx->avail->ring[1] = 1;
	rx->avail->ring[2] = 5;
	rx->avail_idx = 3;
	fe_publish(&fe, 0, 0, false);
	fill_pattern(pkt, sizeof(pkt), 4);
	fe_tx_add(&fe, pkt, sizeof(pkt));
	fe_publish(&fe, 1, 0, false);

	cr_assert(wait_used(&fe, 1, 1, 3000), "tx used index %u", used_idx(&fe, 1));
	usleep(100000);
	cr_assert_eq(used_idx(&fe, 0), 2, "the packet took %u rx buffers, not 2", used_idx(&fe, 0));
	cr_assert_eq(rx->used->ring[0].len, 1);
	cr_assert_eq(rx->used->ring[1].len, 12 + sizeof(pkt) - 1, "second buffer: used length %u",
		     rx->used->ring[1].len);
	memcpy(&h, buf_of(&fe, 0, 0), 1);
	memcpy((uint8_t *)&h + 1, big, sizeof(h) - 1);
	cr_assert_eq(h.num_buffers, 2);
	cr_assert_eq(memcmp(big + sizeof(h) - 1, pkt, sizeof(pkt)), 0);
	munmap(big, 4096);
	close(fds[1]);
	fe_close(&fe);

	backend_stop(&p, json, sizeof(json), err, sizeof(err));
	cr_assert_eq(json_u64(json, "errors"), 0, "%s\n%s", json, err);
}

/*
 * More fds than a request takes, up to the most the kernel passes: the log
 * names the real count, every fd is closed, the frontend gets its failure
 * ack (a GET its reply), and the rings go on.
 */
Test(vhost_backend, surplus_fds_are_counted_closed_and_refused)
{
	static const char *const args[] = { "--mode", "loopback", NULL };
	static const char *const expect[] = {
		"SET_VRING_KICK: 12 fds attached, at most 1",
		"SET_VRING_CALL: 253 fds attached, at most 1",
		"GET_FEATURES: 9 fds attached, at most 0",
	};
	static char json[1024], err[1 << 16];
	int fds[FE_MAX_FDS];
	uint64_t q1 = 1, v;
	unsigned before;
	struct proc p;
	struct fe fe;

	for (unsigned i = 0; i < FE_MAX_FDS; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
		cr_assert_geq(fds[i], 0);
	}
	backend_start(&p, args);
	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1);
	before = count_fds(p.pid);
	cr_assert_eq(fe_acked(&fe, VHOST_USER_SET_VRING_KICK, &q1, 8, fds, 12), 1);
	cr_assert_eq(fe_acked(&fe, VHOST_USER_SET_VRING_CALL, &q1, 8, fds, FE_MAX_FDS), 1);
	fe_send(&fe, VHOST_USER_GET_FEATURES, 0, NULL, 0, fds, 9);
	cr_assert_eq(fe_reply(&fe, VHOST_USER_GET_FEATURES, &v), 0, "no reply to a GET with 9 fds");
	cr_assert(wait_fds(p.pid, before, 1000), "the backend has %u fds, %u before",
		  count_fds(p.pid), before);
	for (unsigned i = 0; i < FE_MAX_FDS; i++)
		close(fds[i]);

	fe_loop_one(&fe, 64, 3, "after the refused messages");
	fe_close(&fe);

	backend_stop(&p, json, sizeof(json), err, sizeof(err));
	expect_in_log(err, expect, sizeof(expect) / sizeof(expect[0]));
	cr_assert_eq(json_u64(json, "errors"), 3, "%s\n%s", json, err);
}

/*
 * A frontend that starts a message must finish it within 2 s: one that
 * sends its payload a byte every half second (each byte well within any
 * per-read timeout) holds the backend's only thread, rings included, for as
 * long as it likes unless the whole message has a deadline.
 */
Test(vhost_backend, message_sent_a_byte_at_a_time_is_cut_off_after_2_s)
{
	static const char *const args[] = { "--mode", "loopback", NULL };
	static char json[1024], err[1 << 16];
	struct vhost_user_hdr hdr = { VHOST_USER_SET_FEATURES, VHOST_USER_VERSION, 8 };
	struct pollfd pfd;
	uint8_t junk[16];
	double t0, hung_up = 0;
	struct proc p;
	struct fe fe;

	backend_start(&p, args);
	memset(&fe, 0, sizeof(fe));
	fe_connect(&fe, p.sock);
	cr_assert_eq(send(fe.sock, &hdr, sizeof(hdr), MSG_NOSIGNAL), (ssize_t)sizeof(hdr));
	t0 = now_s();
	for (unsigned i = 0; i < 7 && !hung_up; i++) {
		pfd = (struct pollfd){ .fd = fe.sock, .events = POLLIN };
		if (poll(&pfd, 1, 500) == 1 && recv(fe.sock, junk, sizeof(junk), 0) == 0)
			hung_up = now_s() - t0;
		else
			send(fe.sock, "x", 1, MSG_NOSIGNAL);
	}
	close(fe.sock);
	cr_assert(hung_up > 0, "still connected after %.1f s of a message of 8 bytes",
		  now_s() - t0);
	cr_assert(hung_up > 1.5 && hung_up < 3, "hung up after %.2f s", hung_up);

	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1);
	fe_close(&fe);
	backend_stop(&p, json, sizeof(json), err, sizeof(err));
	cr_expect_not_null(strstr(err, "SET_FEATURES: message not complete within 2 s"), "%s", err);
	cr_assert_eq(json_u64(json, "errors"), 1, "%s\n%s", json, err);
}

/*
 * A request of a protocol version we do not speak cannot be answered in a
 * form its sender reads (vhost-user has no error reply to a GET), so the
 * backend hangs up, one line, closing the fds that came with it. A request
 * flagged as a reply is ignored, its fds closed too.
 */
Test(vhost_backend, request_of_another_protocol_version_closes_the_connection)
{
	static const char *const args[] = { "--mode", "loopback", NULL };
	static char json[1024], err[1 << 16];
	int efd = eventfd(0, EFD_CLOEXEC);
	uint64_t zero = 0;
	uint8_t junk[16];
	struct pollfd pfd;
	unsigned idle;
	struct proc p;
	struct fe fe;

	cr_assert_geq(efd, 0);
	backend_start(&p, args);
	idle = count_fds(p.pid);
	memset(&fe, 0, sizeof(fe));
	fe_connect(&fe, p.sock);
	fe_send_raw(&fe, VHOST_USER_SET_VRING_CALL, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY,
		    &zero, 8, &efd, 1);
	fe_get(&fe, VHOST_USER_GET_FEATURES);
	cr_assert(wait_fds(p.pid, idle + 1, 1000), "the backend has %u fds: %u idle, 1 connection",
		  count_fds(p.pid), idle);

	fe_send_raw(&fe, VHOST_USER_GET_FEATURES, 2, NULL, 0, &efd, 1);
	pfd = (struct pollfd){ .fd = fe.sock, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 3000), 1, "neither reply nor hang-up to a GET of version 2");
	cr_assert_eq(recv(fe.sock, junk, sizeof(junk), 0), 0, "answered instead of hanging up");
	close(fe.sock);
	close(efd);
	cr_assert(wait_fds(p.pid, idle, 1000), "the backend has %u fds, %u when idle",
		  count_fds(p.pid), idle);

	fe_setup(&fe, p.sock, 1ull << VIRTIO_F_VERSION_1);
	fe_close(&fe);
	backend_stop(&p, json, sizeof(json), err, sizeof(err));
	cr_expect_not_null(strstr(err, "SET_VRING_CALL: flagged as a reply"), "%s", err);
	cr_expect_not_null(strstr(err, "GET_FEATURES: protocol version 2, we speak 1"), "%s", err);
	cr_assert_eq(json_u64(json, "errors"), 2, "%s\n%s", json, err);
	cr_assert_eq(json_u64(json, "connections"), 2, "%s", json);
}

/* ------------------------------------------------------------------ */
/* Against DPDK's virtio_user                                          */
/* ------------------------------------------------------------------ */

/* The count after @key in testpmd's accumulated statistics. */
static long long testpmd_count(const char *out, const char *key)
{
	const char *p = strstr(out, "Accumulated forward statistics");

	cr_assert_not_null(p, "no final statistics from testpmd:\n%s", out);
	p = strstr(p, key);
	cr_assert_not_null(p, "no %s in testpmd's statistics", key);
	return strtoll(p + strlen(key), NULL, 10);
}

/* testpmd on @sock in @fwd mode for about @secs; its output in @out. */
static void testpmd_run(const char *sock, const char *fwd, const char *devargs, double secs,
			char *out, size_t len)
{
	char vdev[160], prefix[64], fwdarg[64], outpath[] = "/tmp/mpops-vhb-tp-XXXXXX";
	char *argv[] = {
		TESTPMD, "--no-pci", "--no-huge", "-m", "256", prefix,
		"--lcores=0@1,1@1", "--vdev", vdev, "--",
		"--nb-cores=1", fwdarg, "--txpkts=64", "--stats-period=1",
		"--total-num-mbufs=8192", NULL,
	};
	int fd = mkstemp(outpath), st;
	pid_t pid;

	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(vdev, sizeof(vdev), "net_virtio_user0,path=%s,queues=1%s", sock, devargs);
	snprintf(prefix, sizeof(prefix), "--file-prefix=vhb%d", (int)getpid());
	eal_rundir_remove(prefix + strlen("--file-prefix="));
	snprintf(fwdarg, sizeof(fwdarg), "--forward-mode=%s", fwd);
	pid = spawn(argv, outpath, outpath);
	usleep((useconds_t)(secs * 1e6));
	kill(pid, SIGINT);
	st = reap(pid, 10);
	read_file(outpath, out, len);
	unlink(outpath);
	eal_rundir_remove(prefix + strlen("--file-prefix="));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "testpmd status 0x%x:\n%s", st, out);
}

/* DPDK's virtio_user (with @devargs added) to our sink, and from our source. */
static void dpdk_virtio_user_case(const char *devargs)
{
	static const char *const sink[] = { "--mode", "sink", "--quiet", NULL };
	static const char *const source[] = { "--mode", "source", "--quiet", NULL };
	static char json[1024], err[1 << 16], out[1 << 17];
	long long tx, rx, ours;
	struct proc p;

	if (access(TESTPMD, X_OK) != 0)
		cr_skip_test("%s is not installed: no check against DPDK's virtio_user", TESTPMD);

	backend_start(&p, sink);
	testpmd_run(p.sock, "txonly", devargs, 3, out, sizeof(out));
	backend_stop(&p, json, sizeof(json), err, sizeof(err));
	tx = testpmd_count(out, "TX-packets: ");
	ours = (long long)json_u64(json, "received_packets");
	cr_log_info("virtio_user txonly -> sink: testpmd sent %lld, mpops-vhost received %lld",
		    tx, ours);
	cr_assert_gt(tx, 1000, "testpmd sent too little:\n%s", out);
	/* What testpmd put on the ring last may still sit there when it stops. */
	cr_assert(ours <= tx && ours >= tx - 1024, "sent %lld, received %lld", tx, ours);
	cr_assert_eq(json_u64(json, "errors"), 0, "%s\n%s", json, err);

	backend_start(&p, source);
	testpmd_run(p.sock, "rxonly", devargs, 3, out, sizeof(out));
	backend_stop(&p, json, sizeof(json), err, sizeof(err));
	rx = testpmd_count(out, "RX-packets: ");
	ours = (long long)json_u64(json, "sent_packets");
	cr_log_info("source -> virtio_user rxonly: mpops-vhost sent %lld, testpmd received %lld",
		    ours, rx);
	cr_assert_gt(rx, 1000, "testpmd received too little:\n%s", out);
	/* Buffers we filled but testpmd had not yet taken when it stopped. */
	cr_assert(rx <= ours && rx >= ours - 1024, "sent %lld, received %lld", ours, rx);
	cr_assert_eq(json_u64(json, "errors"), 0, "%s\n%s", json, err);
}

Test(vhost_backend, dpdk_virtio_user_to_sink_and_from_source)
{
	dpdk_virtio_user_case("");
}

Test(vhost_backend, dpdk_virtio_user_without_mergeable_to_sink_and_from_source)
{
	dpdk_virtio_user_case(",mrg_rxbuf=0");
}
