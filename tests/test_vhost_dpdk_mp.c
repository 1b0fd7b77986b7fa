/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Our backend (mpops-vhost) with DPDK's net_virtio_user in a DPDK primary
 * *and a DPDK secondary* (dpdk-testpmd --proc-type=secondary), each
 * forwarding on its own queue pair. DPDK multi-process needs mounted
 * hugepages: the test reserves some, mounts a hugetlbfs of its own, and
 * gives both back at the end.
 *
 * With a polling backend DPDK's secondary works. With our kick-driven
 * backend it cannot: its virtio_user writes the fd *numbers* the primary
 * stored in shared memory, which mean nothing in the secondary, so none of
 * its notifications arrive (the last test shows it; tests/test_vtnet_mp.c
 * shows ours do).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eal_rundir.h"
#include "helpers.h"

#define TESTPMD "/usr/bin/dpdk-testpmd"
#define VHOST "../drivers/virtio/backend/mpops-vhost"
#define MORE_PAGES 96

extern char **environ;

struct proc {
	pid_t pid;
	int fd;
	char out[1 << 17];
};

static struct proc be, pri, sec;
static char huge[128], sock[128], prefix[32];
static long got_pages = -1;
static int mounted;

static void setup(void)
{
	logcap_start();
	rundir_make();
	chmod(rundir_path(), 0755);
	snprintf(huge, sizeof(huge), "%s/huge", rundir_path());
	snprintf(sock, sizeof(sock), "%s/vhost.sock", rundir_path());
	snprintf(prefix, sizeof(prefix), "vdm%d", (int)getpid());
	be.pid = pri.pid = sec.pid = -1;
}

static void stop(struct proc *p, int sig)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, sig);
	peer_finish(p->pid, p->fd, p->out, sizeof(p->out), 20000);
	p->pid = -1;
}

static void teardown(void)
{
	stop(&sec, SIGKILL);
	stop(&pri, SIGKILL);
	stop(&be, SIGKILL);
	if (mounted)
		umount(huge);
	huge_give(got_pages);
	got_pages = -1;
	eal_rundir_remove(prefix);
	rundir_remove();
}

TestSuite(vhost_dpdk_mp, .init = setup, .fini = teardown, .timeout = 120);

static void need_hugepages(void)
{
	if (access(TESTPMD, X_OK) != 0)
		cr_skip_test("%s is not installed (apt-get install dpdk-dev)", TESTPMD);
	got_pages = huge_take(MORE_PAGES);
	if (got_pages < MORE_PAGES) {
		huge_give(got_pages);	/* no teardown after a skip */
		got_pages = -1;
		cr_skip_test("cannot reserve %d hugepages here (not root, or memory)", MORE_PAGES);
	}
	cr_assert_eq(mkdir(huge, 0700), 0);
	cr_assert_eq(mount("nodev", huge, "hugetlbfs", 0, NULL), 0, "mount: %s", strerror(errno));
	mounted = 1;
}

static void spawn_into(struct proc *p, const char *const argv[])
{
	posix_spawn_file_actions_t fa;
	int fds[2];

	p->out[0] = '\0';
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	cr_assert_eq(posix_spawnp(&p->pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	p->fd = fds[0];
}

static void backend(const char *mode, int kick_driven)
{
	const char *a[] = { "--socket", sock, "--queues", "2", "--mode", mode, "--quiet",
			    kick_driven ? "--kick-driven" : NULL, NULL };

	be.out[0] = '\0';
	be.pid = peer_start(VHOST, a, &be.fd);
	cr_assert_gt(be.pid, 0);
	for (int i = 0; i < 500 && access(sock, F_OK) != 0; i++)
		usleep(10000);
}

/* DPDK's primary (virtio_user on our socket) and its secondary, proc-id 0 and 1. */
static void dpdk_pair(const char *fwd)
{
	char vdev[200], fp[48];
	const char *p[] = {
		"timeout", "90", TESTPMD, "--file-prefix", fp, "--huge-dir", huge,
		"--single-file-segments", "-m", "160", "--no-pci", "--lcores", "0@0,1@0",
		"--vdev", vdev, "--", "--nb-cores=1", "--rxq=2", "--txq=2", "--num-procs=2",
		"--proc-id=0", fwd, "--stats-period=1", "--total-num-mbufs=8192", NULL,
	};
	const char *s[] = {
		"timeout", "90", TESTPMD, "--proc-type=secondary", "--file-prefix", fp,
		"--huge-dir", huge, "--no-pci", "--lcores", "2@1,3@1", "--", "--nb-cores=1",
		"--rxq=2", "--txq=2", "--num-procs=2", "--proc-id=1", fwd, "--stats-period=1",
		NULL,
	};

	snprintf(fp, sizeof(fp), "%s", prefix);
	snprintf(vdev, sizeof(vdev), "net_virtio_user0,path=%s,queues=2", sock);
	spawn_into(&pri, p);
	cr_assert_eq(peer_wait_line(pri.fd, "Port statistics", pri.out, sizeof(pri.out), 30000), 0,
		     "DPDK's primary did not start:\n%s", pri.out);
	spawn_into(&sec, s);
	sleep(4);
}

/* The last figure after @key in a testpmd output. */
static unsigned long long last(const char *out, const char *key)
{
	const char *p, *l = NULL;

	for (p = out; (p = strstr(p, key)); p++)
		l = p;
	return l ? strtoull(l + strlen(key), NULL, 10) : 0;
}

static unsigned long long backend_field(const char *key)
{
	const char *p = strstr(be.out, key);

	cr_assert_not_null(p, "no %s in:\n%s", key, be.out);
	return strtoull(p + strlen(key), NULL, 10);
}

static unsigned long long backend_kicks(unsigned q)
{
	const char *p = strstr(be.out, "\"kicks\": [");

	cr_assert_not_null(p, "%s", be.out);
	p += 10;
	for (unsigned i = 0; i < q; i++)
		p = strchr(p, ',') + 1;
	return strtoull(p, NULL, 10);
}

Test(vhost_dpdk_mp, dpdk_primary_and_secondary_transmit_to_our_backend)
{
	unsigned long long s_tx, total;

	need_hugepages();
	backend("sink", 0);
	dpdk_pair("--forward-mode=txonly");
	stop(&sec, SIGINT);
	stop(&pri, SIGINT);
	stop(&be, SIGTERM);
	s_tx = last(sec.out, "TX-packets: ");
	total = last(pri.out, "TX-packets: ");	/* the port's total, both queues */
	cr_assert_gt(s_tx, 10000, "DPDK's secondary sent too little:\n%s", sec.out);
	cr_assert_gt(total, s_tx);
	/* What either left on its ring when it stopped may not have been taken. */
	cr_assert_leq(backend_field("\"received_packets\": "), total);
	cr_assert_geq(backend_field("\"received_packets\": "), total - 1024, "%s\n%s", be.out,
		      pri.out);
}

Test(vhost_dpdk_mp, our_backend_reaches_dpdk_secondary_rx)
{
	unsigned long long s_rx;

	need_hugepages();
	backend("source", 0);
	dpdk_pair("--forward-mode=rxonly");
	stop(&sec, SIGINT);
	stop(&pri, SIGINT);
	stop(&be, SIGTERM);
	s_rx = last(sec.out, "RX-packets: ");
	cr_assert_gt(s_rx, 10000, "DPDK's secondary received too little:\n%s", sec.out);
	cr_assert_geq(backend_field("\"sent_packets\": "), last(pri.out, "RX-packets: "));
}

Test(vhost_dpdk_mp, dpdk_secondary_kicks_do_not_reach_a_kick_driven_backend)
{
	need_hugepages();
	backend("sink", 1);
	dpdk_pair("--forward-mode=txonly");
	stop(&sec, SIGINT);
	stop(&pri, SIGINT);
	stop(&be, SIGTERM);
	/* The primary's tx queue (virtqueue 1) was kicked again and again; the
	 * secondary's (virtqueue 3) got only the kick of its set-up, which the
	 * primary sent: none of the secondary's own arrived. */
	cr_assert_gt(backend_kicks(1), 100, "%s", be.out);
	cr_assert_leq(backend_kicks(3), 1, "%s", be.out);
	cr_assert_gt(last(sec.out, "TX-total: "), 0, "%s", sec.out);
}
