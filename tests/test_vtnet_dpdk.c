/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Interop with a peer we did not write: our driver against DPDK's vhost-user
 * backend (dpdk-testpmd --vdev net_vhost0), from the primary and from a
 * secondary, with and without mergeable rx buffers. testpmd counts what we
 * send (rxonly) and sends what we count (txonly).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "eal_rundir.h"
#include "helpers.h"
#include <mpops/vtnet.h>

#define TESTPMD "/usr/bin/dpdk-testpmd"

extern char **environ;

static struct mpops_region *r;
static char sock[100];
static char prefix[48];	/* testpmd's --file-prefix, once started */
static pid_t pmd = -1;
static int pmd_fd = -1;
static char pmd_out[1 << 17];

static void setup(void)
{
	struct mpops_region_opts o = { .sz = sizeof(o), .size = 64u << 20 };

	logcap_start();
	o.runtime_dir = rundir_make();
	chmod(rundir_path(), 0755);
	cr_assert_eq(mpops_region_create("vd", &o, &r), 0);
	snprintf(sock, sizeof(sock), "%s/vhost.sock", rundir_path());
}

static void teardown(void)
{
	if (pmd > 0) {
		kill(pmd, SIGKILL);
		waitpid(pmd, NULL, 0);
		close(pmd_fd);
		pmd = -1;
	}
	mpops_region_detach(r);
	rundir_remove();
	eal_rundir_remove(prefix);
}

TestSuite(vtnet_dpdk, .init = setup, .fini = teardown, .timeout = 90);

static void need_testpmd(void)
{
	if (access(TESTPMD, X_OK) != 0)
		cr_skip_test("%s is not installed (apt-get install dpdk)", TESTPMD);
}

/* dpdk-testpmd as the vhost-user backend, forwarding mode @mode. */
static void pmd_start(const char *mode)
{
	char vdev[200];
	const char *argv[] = {
		"timeout", "80", TESTPMD, "--no-pci", "--no-huge", "-m", "256",
		"--file-prefix", prefix, "--lcores", "0@0,1@0", "--vdev", vdev, "--",
		"--nb-cores=1", mode, "--auto-start", "--stats-period=1",
		"--total-num-mbufs=8192", "--txpkts=64", NULL,
	};
	posix_spawn_file_actions_t fa;
	int p[2];

	need_testpmd();
	snprintf(vdev, sizeof(vdev), "net_vhost0,iface=%s,queues=1", sock);
	snprintf(prefix, sizeof(prefix), "mpt%d", (int)getpid());
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	cr_assert_eq(posix_spawnp(&pmd, "timeout", &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	pmd_fd = p[0];
}

/* Stop testpmd (it prints its totals) and return the last RX/TX counts. */
static void pmd_stop(unsigned long long *rx, unsigned long long *tx)
{
	const char *p, *last_rx = NULL, *last_tx = NULL;

	/* timeout forwards SIGINT to testpmd, which prints its totals. */
	kill(pmd, SIGINT);
	pmd_out[0] = '\0';
	peer_finish(pmd, pmd_fd, pmd_out, sizeof(pmd_out), 20000);
	pmd = -1;
	for (p = pmd_out; (p = strstr(p, "RX-packets:")); p++)
		last_rx = p;
	for (p = pmd_out; (p = strstr(p, "TX-packets:")); p++)
		last_tx = p;
	*rx = last_rx ? strtoull(last_rx + 11, NULL, 10) : 0;
	*tx = last_tx ? strtoull(last_tx + 11, NULL, 10) : 0;
}

static struct mpops_port *port_up(int mergeable)
{
	struct vtnet_conf c = {
		.sz = sizeof(c), .vhost_path = sock, .pool_size = 4096,
		.connect_timeout_ms = 30000, .mergeable = mergeable,
	};
	struct mpops_port *p = NULL;
	struct vtnet_info in;

	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), 0);
	cr_assert_eq(mpops_port_start(p), 0);
	vtnet_info_get(p, &in);
	cr_assert_eq(!!(in.features & (1ULL << 15)), mergeable > 0, "features %#llx",
		     (unsigned long long)in.features);
	return p;
}

static uint64_t primary_tx(struct mpops_port *p, uint64_t count)
{
	uint64_t sent = 0;
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	while (sent < count) {
		struct mpops_pkt *pk[32];
		int n;

		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 20)
			break;
		if (mpops_pkt_alloc_bulk(mpops_port_pool(p), pk, 32) < 0)
			continue;
		for (int i = 0; i < 32; i++) {
			memset(mpops_pkt_data(mpops_region_base(r), pk[i]), 0xff, 64);
			pk[i]->data_len = 64;
			pk[i]->pkt_len = 64;
		}
		n = mpops_tx_burst(p, 0, pk, 32);
		sent += (uint64_t)(n > 0 ? n : 0);
		if (n < 32)
			mpops_pkt_free_bulk(mpops_port_pool(p), pk + (n > 0 ? n : 0), (unsigned)(32 - (n > 0 ? n : 0)));
	}
	/* Let testpmd take what is left in the ring. */
	usleep(500000);
	return sent;
}

static uint64_t primary_rx(struct mpops_port *p, uint64_t count)
{
	uint64_t got = 0;
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	while (got < count) {
		struct mpops_pkt *pk[32];
		int n = mpops_rx_burst(p, 0, pk, 32);

		for (int i = 0; i < n; i++) {
			cr_assert_eq(pk[i]->pkt_len, 64);
			mpops_pkt_free(mpops_port_pool(p), pk[i]);
		}
		got += (uint64_t)(n > 0 ? n : 0);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 20)
			break;
	}
	return got;
}

static void primary_tx_case(int mergeable)
{
	unsigned long long rx, tx;
	struct mpops_port *p;
	uint64_t sent;

	pmd_start("--forward-mode=rxonly");
	p = port_up(mergeable);
	sent = primary_tx(p, 20000);
	cr_assert_eq(sent, 20000);
	pmd_stop(&rx, &tx);
	cr_assert_eq(rx, sent, "testpmd counted %llu of %llu\n%s", rx, (unsigned long long)sent,
		     pmd_out + (strlen(pmd_out) > 2000 ? strlen(pmd_out) - 2000 : 0));
	mpops_port_close(p);
}

static void primary_rx_case(int mergeable)
{
	unsigned long long rx, tx;
	struct mpops_port *p;
	uint64_t got;

	pmd_start("--forward-mode=txonly");
	p = port_up(mergeable);
	got = primary_rx(p, 20000);
	pmd_stop(&rx, &tx);
	cr_assert_geq(got, 20000);
	cr_assert_geq(tx, got, "testpmd sent %llu, we received %llu", tx, (unsigned long long)got);
	mpops_port_close(p);
}

static void secondary_case(const char *mode, const char *cmd, int mergeable)
{
	const char *args[] = { cmd, rundir_path(), "vd", "p0", "0", "20000", NULL };
	unsigned long long rx, tx, n;
	struct mpops_port *p;
	char out[8192], *s;
	int st;

	pmd_start(mode);
	p = port_up(mergeable);
	st = peer_run("vt-peer", args, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	usleep(500000);
	pmd_stop(&rx, &tx);
	if (strcmp(cmd, "tx") == 0) {
		cr_assert((s = strstr(out, "sent=")), "%s", out);
		n = strtoull(s + 5, NULL, 10);
		cr_assert_eq(n, 20000, "%s", out);
		cr_assert_eq(rx, n, "testpmd counted %llu of the secondary's %llu", rx, n);
	} else {
		cr_assert((s = strstr(out, "received=")), "%s", out);
		n = strtoull(s + 9, NULL, 10);
		cr_assert_geq(n, 20000, "%s", out);
		cr_assert_geq(tx, n);
	}
	cr_assert(strstr(out, "audit=0"), "%s", out);
	mpops_port_close(p);
}

Test(vtnet_dpdk, primary_tx_is_counted_by_testpmd_mergeable) { primary_tx_case(1); }
Test(vtnet_dpdk, primary_tx_is_counted_by_testpmd_not_mergeable) { primary_tx_case(-1); }
Test(vtnet_dpdk, testpmd_txonly_arrives_in_primary_mergeable) { primary_rx_case(1); }
Test(vtnet_dpdk, testpmd_txonly_arrives_in_primary_not_mergeable) { primary_rx_case(-1); }
Test(vtnet_dpdk, secondary_tx_is_counted_by_testpmd_mergeable)
{
	secondary_case("--forward-mode=rxonly", "tx", 1);
}
Test(vtnet_dpdk, secondary_tx_is_counted_by_testpmd_not_mergeable)
{
	secondary_case("--forward-mode=rxonly", "tx", -1);
}
Test(vtnet_dpdk, testpmd_txonly_arrives_in_secondary_mergeable)
{
	secondary_case("--forward-mode=txonly", "rx", 1);
}
Test(vtnet_dpdk, testpmd_txonly_arrives_in_secondary_not_mergeable)
{
	secondary_case("--forward-mode=txonly", "rx", -1);
}
