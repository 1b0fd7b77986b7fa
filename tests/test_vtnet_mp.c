/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vtnet across processes, with our backend mpops-vhost in kick-driven mode:
 * it sleeps on the kick eventfds, so every packet a secondary moves proves
 * that its notify_queue reached the backend through its *own* kick fd.
 * Every process here is a separate executable: vt-primary, vt-peer,
 * mpops-vhost; this test process orchestrates (and in some tests attaches
 * as a secondary itself).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eal_rundir.h"
#include "helpers.h"
#include <mpops/vtnet.h>

#define VHOST "../drivers/virtio/backend/mpops-vhost"

static struct peer backend, primary;
static char sock[100];

static void setup(void)
{
	logcap_start();
	rundir_make();
	snprintf(sock, sizeof(sock), "%s/vhost.sock", rundir_path());
	backend.pid = primary.pid = -1;
}

static char eal_prefix[48];	/* dpdk-testpmd's --file-prefix, once started */

static void teardown(void)
{
	peers_end_all();
	peer_end(&primary, SIGKILL);
	peer_end(&backend, SIGKILL);
	rundir_remove();
	eal_rundir_remove(eal_prefix);
	eal_prefix[0] = '\0';
}

TestSuite(vtnet_mp, .init = setup, .fini = teardown, .timeout = 90);

static void backend_start_mode(int client, const char *mode)
{
	const char *args[] = { "--socket", sock, "--queues", "4", "--mode", mode,
			       "--kick-driven", "--quiet", client ? "--client" : NULL, NULL };

	peer_begin(&backend, VHOST, args, NULL);
}

static void backend_start(int client)
{
	backend_start_mode(client, "loopback");
}

static void primary_start(const char *prog, const char *nqp, const char *mrg, int server)
{
	const char *args[] = { rundir_path(), "vm", "p0", sock, nqp, mrg, server ? "server" : NULL,
			       NULL };

	peer_begin(&primary, prog, args, "ready");
}

/* The backend's final JSON: per-queue kicks it read from the eventfds. */
static unsigned long long backend_kicks(unsigned q)
{
	const char *p = strstr(backend.out, "\"kicks\": [");

	cr_assert_not_null(p, "no kicks in the backend's report:\n%s", backend.out);
	p += 10;
	for (unsigned i = 0; i < q; i++) {
		p = strchr(p, ',');
		cr_assert_not_null(p);
		p++;
	}
	return strtoull(p, NULL, 10);
}

static unsigned long long field(const char *out, const char *key)
{
	const char *p = strstr(out, key);

	cr_assert_not_null(p, "no %s in:\n%s", key, out);
	return strtoull(p + strlen(key), NULL, 10);
}

Test(vtnet_mp, secondaries_kick_the_backend_through_their_own_fds)
{
	const char *a0[] = { "loop", rundir_path(), "vm", "p0", "0", "3000", NULL };
	const char *a1[] = { "loop", rundir_path(), "vm", "p0", "1", "3000", NULL };
	static struct peer s0, s1;
	int st0, st1;

	backend_start(0);
	primary_start("vt-primary", "2", "1", 0);
	peer_begin(&s0, "vt-peer", a0, NULL);
	peer_begin(&s1, "vt-peer", a1, NULL);
	st0 = peer_finish(s0.pid, s0.fd, s0.out, sizeof(s0.out), 30000);
	st1 = peer_finish(s1.pid, s1.fd, s1.out, sizeof(s1.out), 30000);
	cr_assert(EXITED_OK(st0), "secondary 0:\n%s", s0.out);
	cr_assert(EXITED_OK(st1), "secondary 1:\n%s", s1.out);
	cr_assert_eq(field(s0.out, "received="), 3000);
	cr_assert_eq(field(s1.out, "received="), 3000);
	cr_assert(strstr(s0.out, "audit=0") && strstr(s1.out, "audit=0"));
	peer_end(&primary, SIGTERM);
	peer_end(&backend, SIGTERM);
	/* Only secondary k transmits on virtqueue 2k+1: every one of its
	 * notifications, and nothing else, arrived at the backend. */
	cr_assert_gt(field(s0.out, "tx_kicks="), 0);
	cr_assert_eq(backend_kicks(1), field(s0.out, "tx_kicks="), "%s", backend.out);
	cr_assert_eq(backend_kicks(3), field(s1.out, "tx_kicks="), "%s", backend.out);
	/* rx: the primary's one at start, then the secondary's refills. */
	cr_assert_eq(backend_kicks(0), 1 + field(s0.out, "rx_kicks="), "%s", backend.out);
	cr_assert_eq(backend_kicks(2), 1 + field(s1.out, "rx_kicks="), "%s", backend.out);
}

Test(vtnet_mp, origin_bug_secondary_dies_on_notify_real_driver_does_not)
{
	/* As in the report: a secondary receiving with mergeable buffers.
	 * The backend generates packets when kicked, so refilling rx means
	 * notifying it. */
	const char *a[] = { "rx", rundir_path(), "vm", "p0", "0", "2000", NULL };
	static struct peer s;
	int st;

	/* The field report's build: the ops pointer in the shared port. */
	backend_start_mode(0, "source");
	primary_start("vt-primary-origin", "1", "1", 0);
	peer_begin(&s, "vt-peer-origin", a, NULL);
	st = peer_finish(s.pid, s.fd, s.out, sizeof(s.out), 30000);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
		  "the origin's secondary did not die of SIGSEGV (status %#x):\n%s", st, s.out);
	peer_end(&primary, SIGTERM);
	peer_end(&backend, SIGTERM);

	/* The same traffic with the real driver. */
	backend_start_mode(0, "source");
	primary_start("vt-primary", "1", "1", 0);
	peer_begin(&s, "vt-peer", a, NULL);
	st = peer_finish(s.pid, s.fd, s.out, sizeof(s.out), 30000);
	cr_assert(EXITED_OK(st), "%s", s.out);
	cr_assert_geq(field(s.out, "received="), 2000);
	cr_assert_gt(field(s.out, "rx_kicks="), 0, "%s", s.out);
	peer_end(&primary, SIGTERM);
	peer_end(&backend, SIGTERM);
	/* Every rx notification of the secondary reached the backend. */
	cr_assert_eq(backend_kicks(0), 1 + field(s.out, "rx_kicks="), "%s", backend.out);
}

static struct mpops_port *attach_here(struct mpops_region **r)
{
	struct mpops_attach_opts ao = { .sz = sizeof(ao), .runtime_dir = rundir_path() };
	struct mpops_port *p;

	cr_assert_eq(mpops_region_attach("vm", &ao, r), 0);
	cr_assert_eq(mpops_port_open(*r, "p0", &p), 0);
	return p;
}

Test(vtnet_mp, claims_name_the_owner_and_dead_owners_are_replaced)
{
	const char *a[] = { "hold", rundir_path(), "vm", "p0", "0", "0", NULL };
	static struct peer s;
	struct mpops_region *r;
	struct mpops_port *p;
	struct mpops_port_info in;
	char line[96];

	backend_start(0);
	primary_start("vt-primary", "2", "1", 0);
	peer_begin(&s, "vt-peer", a, "holding");
	p = attach_here(&r);
	cr_assert_eq(mpops_port_claim(p, 0), -EBUSY);
	snprintf(line, sizeof(line), "queue pair 0 is claimed by pid %d", (int)s.pid);
	cr_assert_eq(logcap_count(line), 1);
	cr_assert_eq(mpops_port_claim(p, 1), 0);
	mpops_port_info_get(p, &in);
	cr_assert_eq(in.owner_pid[0], s.pid);
	cr_assert_eq(in.owner_pid[1], getpid());
	/* Its owner dies: the claim can be taken. */
	kill(s.pid, SIGKILL);
	peer_finish(s.pid, s.fd, s.out, sizeof(s.out), 5000);
	for (int i = 0; i < 200 && mpops_port_claim(p, 0) == -EBUSY; i++)
		usleep(10000);
	mpops_port_info_get(p, &in);
	cr_assert_eq(in.owner_pid[0], getpid());
	mpops_port_close(p);
	mpops_region_detach(r);
}

static int wait_link(struct mpops_port *p, int up)
{
	struct mpops_port_link l;

	for (int i = 0; i < 500; i++) {
		mpops_port_link_get(p, &l);
		if (l.up == up)
			return 0;
		usleep(10000);
	}
	return -1;
}

Test(vtnet_mp, backend_exit_turns_the_link_down_everywhere_and_server_mode_recovers)
{
	const char *a[] = { "loop", rundir_path(), "vm", "p0", "0", "1000", NULL };
	static struct peer s;
	struct mpops_region *r;
	struct mpops_port *p;
	struct mpops_port_link l;
	int st;

	/* We listen (server mode); mpops-vhost connects as a client. */
	backend_start(1);
	primary_start("vt-primary", "1", "1", 1);
	p = attach_here(&r);
	cr_assert_eq(wait_link(p, 1), 0);
	kill(backend.pid, SIGKILL);
	peer_finish(backend.pid, backend.fd, backend.out, sizeof(backend.out), 5000);
	backend.pid = -1;
	/* Seen from this secondary; the primary lives on (no SIGPIPE). */
	cr_assert_eq(wait_link(p, 0), 0);
	usleep(200000);
	cr_assert_eq(kill(primary.pid, 0), 0, "the primary died:\n%s", primary.out);
	/* A new backend connects: the port comes back and carries traffic. */
	backend_start(1);
	cr_assert_eq(wait_link(p, 1), 0);
	mpops_port_link_get(p, &l);
	cr_assert_eq(l.reconnects, 2);
	peer_begin(&s, "vt-peer", a, NULL);
	st = peer_finish(s.pid, s.fd, s.out, sizeof(s.out), 30000);
	cr_assert(EXITED_OK(st), "%s", s.out);
	cr_assert_eq(field(s.out, "received="), 1000);
	mpops_port_close(p);
	mpops_region_detach(r);
}

Test(vtnet_mp, dump_tool_prints_the_shared_state_read_only)
{
	const char *a[] = { "loop", rundir_path(), "vm", "p0", "1", "500", NULL };
	const char *d[] = { "--json", "--runtime-dir", rundir_path(), "vm", "p0", NULL };
	static struct peer s;
	static char out[1 << 15];
	int st;

	backend_start(0);
	primary_start("vt-primary", "2", "1", 0);
	peer_begin(&s, "vt-peer", a, NULL);
	st = peer_finish(s.pid, s.fd, s.out, sizeof(s.out), 30000);
	cr_assert(EXITED_OK(st), "%s", s.out);
	st = peer_run("../app/mpops-dump", d, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "\"name\": \"vtpci/user\"}"), "%s", out);
	cr_assert(strstr(out, "\"started\": true, \"link_up\": true"), "%s", out);
	cr_assert(strstr(out, "VERSION_1"), "%s", out);
	cr_assert(strstr(out, "\"nb_qp\": 2"), "%s", out);
	/* Queue pair 1 carried the secondary's 500 packets each way. */
	cr_assert(strstr(out, "{\"vq\": 3, \"dir\": \"tx\""), "%s", out);
	cr_assert(strstr(out, "\"packets\": 500, \"bytes\": 32000"), "%s", out);
	/* The pool: every buffer free or on a ring (the secondary left; its
	 * queue pair's tx ring keeps what it sent until the next burst). */
	cr_assert(strstr(out, "\"pool\": {\"total\": "), "%s", out);
	cr_assert_eq(json_num(strstr(out, "\"pool\""), "total"),
		     json_num(strstr(out, "\"pool\""), "free") +
		     json_num(strstr(out, "\"pool\""), "on_rings"), "%s", out);
	cr_assert_eq(json_num(strstr(out, "\"pool\""), "lost"), 0, "%s", out);
	cr_assert(strstr(out, "\"buffers\": "), "%s", out);
	/* The memory: vt-primary's 64 MiB, three quarters of it the device
	 * part, which holds the rings and the pool's buffers. */
	cr_assert_eq(json_num(strstr(out, "\"memory\""), "size"), 64 << 20, "%s", out);
	cr_assert_eq(json_num(strstr(out, "\"memory\""), "dev_off"), 16 << 20, "%s", out);
	cr_assert_eq(json_num(strstr(out, "\"memory\""), "dev_size"), 48 << 20, "%s", out);
	cr_assert_gt(json_num(strstr(out, "\"memory\""), "dev_used"), 4096 * 2048, "%s", out);
	/* The text form too. */
	d[0] = "--runtime-dir";
	d[1] = rundir_path();
	d[2] = "vm";
	d[3] = "p0";
	d[4] = NULL;
	st = peer_run("../app/mpops-dump", d, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "transport: ops ID"), "%s", out);
	cr_assert(strstr(out, "= vtpci/user"), "%s", out);
	cr_assert(strstr(out, "  pool: "), "%s", out);
	cr_assert(strstr(out, " free ("), "%s", out);
	cr_assert(strstr(out, " bufs "), "%s", out);
	cr_assert(strstr(out, "device part (all a device is given) 50331648 bytes from 0x1000000"),
		  "%s", out);
}

/* ==== claims held across events ========================================= */

/*
 * Read @p's output into p->out until @needle appears after p->mark; the
 * mark then moves past it, so that the same line is never found twice and
 * lines that came in one read with an earlier one are not lost.
 */
static const char *wait_for(struct peer *p, size_t *mark, const char *needle, int timeout_ms)
{
	size_t used = strlen(p->out);

	for (int waited = 0;; waited += 10) {
		const char *hit = strstr(p->out + *mark, needle);
		struct pollfd pf = { .fd = p->fd, .events = POLLIN };
		ssize_t n;

		if (hit) {
			*mark = (size_t)(hit - p->out) + strlen(needle);
			return hit;
		}
		cr_assert_lt(waited, timeout_ms, "no '%s' within %d ms:\n%s", needle, timeout_ms,
			     p->out + *mark);
		if (poll(&pf, 1, 10) <= 0)
			continue;
		cr_assert_lt(used + 1, sizeof(p->out), "output too long");
		n = read(p->fd, p->out + used, sizeof(p->out) - used - 1);
		cr_assert_gt(n, 0, "pid %d ended before '%s':\n%s", (int)p->pid, needle,
			     p->out + *mark);
		used += (size_t)n;
		p->out[used] = '\0';
	}
}

struct holder {
	struct peer pr;
	size_t mark;
	int rounds;
};

/* One round of COUNT packets through the loopback backend, in the same
 * process that has held its claim all along: every packet comes back. */
static void round_ok(struct holder *h, unsigned long long count, const char *after)
{
	char needle[32];
	const char *line;

	kill(h->pr.pid, SIGUSR1);
	snprintf(needle, sizeof(needle), "round=%d ", ++h->rounds);
	line = wait_for(&h->pr, &h->mark, needle, 20000);
	cr_assert_eq(field(line, "sent="), count, "after %s: %s", after, line);
	cr_assert_eq(field(line, "received="), count, "after %s: %s", after, line);
	cr_assert_eq(field(line, "bad="), 0, "after %s: %s", after, line);
}

static void holders_end(struct holder *h, int n)
{
	for (int i = 0; i < n; i++) {
		const char *line;
		int st;

		kill(h[i].pr.pid, SIGTERM);
		st = peer_finish(h[i].pr.pid, h[i].pr.fd, h[i].pr.out + strlen(h[i].pr.out),
				 sizeof(h[i].pr.out) - strlen(h[i].pr.out), 10000);
		h[i].pr.pid = -1;
		cr_assert(EXITED_OK(st), "holder %d:\n%s", i, h[i].pr.out);
		line = strstr(h[i].pr.out + h[i].mark, "rx_errors=");
		cr_assert_not_null(line, "%s", h[i].pr.out);
		cr_assert_eq(field(line, "rx_errors="), 0, "%s", line);
		cr_assert_eq(field(line, "tx_errors="), 0, "%s", line);
		cr_assert(strstr(line, "audit=0"), "%s", line);
		cr_assert_null(strstr(h[i].pr.out, "stray="), "%s", h[i].pr.out);
	}
}

#define TESTPMD "/usr/bin/dpdk-testpmd"
extern char **environ;

/*
 * dpdk-testpmd as the backend: its vhost PMD (net_vhost0) with 3 queue
 * pairs in io mode, one port paired with itself, so every packet goes back
 * on the queue it came from; --stats-period keeps it running without a
 * terminal. Started without `timeout` so that a SIGKILL
 * kills testpmd itself; ended by its pid like every other process here.
 */
static void testpmd_start(int client)
{
	char vdev[200];
	const char *argv[] = {
		TESTPMD, "--no-pci", "--no-huge", "-m", "256", "--file-prefix", eal_prefix,
		"--lcores", "0@0,1@0", "--vdev", vdev, "--", "--nb-cores=1", "--rxq=3", "--txq=3",
		"--forward-mode=io", "--auto-start", "--stats-period=5", "--total-num-mbufs=8192",
		NULL,
	};
	posix_spawn_file_actions_t fa;
	int p[2];

	if (access(TESTPMD, X_OK) != 0)
		cr_skip_test("%s is not installed (apt-get install dpdk)", TESTPMD);
	snprintf(vdev, sizeof(vdev), "net_vhost0,iface=%s,queues=3%s", sock,
		 client ? ",client=1" : "");
	snprintf(eal_prefix, sizeof(eal_prefix), "mpm%d", (int)getpid());
	if (!client)
		unlink(sock);	/* a killed testpmd leaves its socket behind */
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	cr_assert_eq(posix_spawn(&backend.pid, TESTPMD, &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	backend.fd = p[0];
	backend.out[0] = '\0';
}

enum backend_kind { MPOPS_VHOST, DPDK_TESTPMD };

static void any_backend_start(enum backend_kind kind, int client)
{
	if (kind == DPDK_TESTPMD)
		testpmd_start(client);
	else
		backend_start(client);
}

/* One round in the primary, which holds queue pair 2 itself. */
static void primary_round_ok(int round, size_t *pmark, unsigned long long count,
			     const char *after)
{
	char needle[40];
	const char *line;

	kill(primary.pid, SIGUSR2);
	snprintf(needle, sizeof(needle), "primary round=%d ", round);
	line = wait_for(&primary, pmark, needle, 20000);
	cr_assert_eq(field(line, "received="), count, "primary, after %s: %s", after, line);
	cr_assert_eq(field(line, "bad="), 0, "primary, after %s: %s", after, line);
}

/*
 * Every buffer of the port's pool accounted for, read by mpops-dump (a
 * read-only attach) once the secondaries are gone: none lost, none held by
 * anyone (the primary's rounds freed theirs), none unaccounted or listed
 * twice; what is not free is on the rings.
 */
static void pool_counted(void)
{
	const char *d[] = { "--json", "--runtime-dir", rundir_path(), "vm", "p0", NULL };
	static char out[1 << 15];
	const char *pool = NULL;

	for (int i = 0; i < 100; i++) {
		int st = peer_run("../app/mpops-dump", d, out, sizeof(out));

		cr_assert(EXITED_OK(st), "%s", out);
		pool = strstr(out, "\"pool\": {");
		cr_assert_not_null(pool, "%s", out);
		if (json_num(pool, "gone") == 0 && json_num(pool, "held") == 0)
			break;
		usleep(20000);
	}
	cr_assert_eq(json_num(pool, "lost"), 0, "%s", pool);
	cr_assert_eq(json_num(pool, "twice"), 0, "%s", pool);
	cr_assert_eq(json_num(pool, "unaccounted"), 0, "%s", pool);
	cr_assert_eq(json_num(pool, "gone"), 0, "%s", pool);
	cr_assert_eq(json_num(pool, "held"), 0, "%s", pool);
	cr_assert_eq(json_num(pool, "free") + json_num(pool, "on_rings") +
			     json_num(pool, "on_rings_at_start"),
		     json_num(pool, "total"), "%s", pool);
}

/*
 * The primary and two secondaries of another executable claim queue pairs
 * 2, 0 and 1 once, and keep them while the port is stopped and started,
 * and while the backend is killed and a new one comes: after each event
 * all three move every packet again, in the same processes, nothing
 * reopened.
 */
static void claims_held_across_events(enum backend_kind kind, int port_is_server, int kills)
{
	const char *a0[] = { "serve", rundir_path(), "vm", "p0", "0", "600", NULL };
	const char *a1[] = { "serve", rundir_path(), "vm", "p0", "1", "600", NULL };
	static const char *events[] = { "start", "stop + start", "stop + start",
					 "backend killed and back", "backend killed and back" };
	static struct holder h[2];
	size_t pmark = 0;

	setenv("VT_PRIMARY_LOG", "1", 1);
	setenv("VT_PRIMARY_SERVE_QP", "2", 1);
	any_backend_start(kind, port_is_server);
	if (kind == DPDK_TESTPMD) {
		/* Not before testpmd forwards: a frontend that connects while
		 * testpmd starts its port (which, as a client, it does at once)
		 * may find testpmd's tx to it never enabled (DPDK 22.11). */
		size_t bmark = 0;

		wait_for(&backend, &bmark, "start packet forwarding", 20000);
	}
	primary_start("vt-primary", "3", "1", port_is_server);
	unsetenv("VT_PRIMARY_SERVE_QP");
	memset(h, 0, sizeof(h));
	peer_begin(&h[0].pr, "vt-peer", a0, NULL);
	peer_begin(&h[1].pr, "vt-peer", a1, NULL);
	for (int i = 0; i < 2; i++)
		wait_for(&h[i].pr, &h[i].mark, "holding", 10000);
	for (int e = 0; e < 3 + kills; e++) {
		if (e == 1 || e == 2) {
			kill(primary.pid, SIGUSR1);
			wait_for(&primary, &pmark, "restarted rc=0", 10000);
		} else if (e >= 3) {
			kill(backend.pid, SIGKILL);
			peer_finish(backend.pid, backend.fd, backend.out, sizeof(backend.out), 5000);
			backend.pid = -1;
			wait_for(&primary, &pmark, "disconnected: link down", 10000);
			any_backend_start(kind, port_is_server);
			wait_for(&primary, &pmark, "reconnected: link up", 20000);
		}
		for (int i = 0; i < 2; i++)
			round_ok(&h[i], 600, events[e]);
		primary_round_ok(e + 1, &pmark, 600, events[e]);
	}
	holders_end(h, 2);
	pool_counted();
	unsetenv("VT_PRIMARY_LOG");
}

Test(vtnet_mp, claims_held_across_restart_and_backend_loss_port_as_client)
{
	claims_held_across_events(MPOPS_VHOST, 0, 2);
}

Test(vtnet_mp, claims_held_across_restart_and_backend_loss_port_as_server)
{
	claims_held_across_events(MPOPS_VHOST, 1, 2);
}

Test(vtnet_mp, claims_held_across_restart_and_testpmd_loss_port_as_client)
{
	claims_held_across_events(DPDK_TESTPMD, 0, 2);
}

/*
 * testpmd as the client: stop and start only. A testpmd started while our
 * port listens connects at once, during its own port start, and then never
 * sends to us (its RX counts our packets, its TX stays 0: DPDK 22.11's
 * vhost PMD, reproduced by hand with vt-primary and a fresh testpmd). The
 * first start waits for testpmd to forward; a killed testpmd's successor
 * cannot be held back that way.
 */
Test(vtnet_mp, claims_held_across_restart_with_testpmd_as_client)
{
	claims_held_across_events(DPDK_TESTPMD, 1, 0);
}
