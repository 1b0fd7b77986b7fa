/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The driver side of DPDK 22.11's ethdev and vdev bus, which Debian's
 * libdpdk-dev does not install (ethdev_driver.h, bus_vdev_driver.h: DPDK's
 * "driver SDK" headers). Written for this shim from the ABI of the 22.11
 * libraries: only what it uses, every field before the last one it touches,
 * in DPDK's order.
 *
 * The offsets below were read from Debian's librte_ethdev.so.23 and
 * librte_bus_vdev.so.23 (22.11.11; objdump of rte_eth_stats_get,
 * rte_eth_dev_info_get, rte_eth_rx_queue_setup, rte_eth_link_get,
 * rte_eth_dev_allocate, rte_eth_dev_probing_finish, rte_eth_macaddr_get,
 * the vdev bus's probe loop) and are pinned by the static asserts; the
 * probe checks at run time that the device DPDK hands out sits where this
 * layout says (pmd.c: abi_check), and refuses with one line otherwise. A
 * DPDK other than 22.11 is refused at build time (meson.build).
 */
#ifndef MPOPS_PMD_DPDK_ABI_H
#define MPOPS_PMD_DPDK_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <rte_dev.h>
#include <rte_ethdev.h>

/* ---- vdev bus ----------------------------------------------------------- */

struct rte_driver {
	TAILQ_ENTRY(rte_driver) next;
	const char *name;
	const char *alias;
};

struct rte_vdev_device {
	TAILQ_ENTRY(rte_vdev_device) next;
	/* struct rte_device follows: only its address is used (rte_dev_name(),
	 * rte_dev_devargs() read it). */
	char device[];
};

struct rte_vdev_driver {
	TAILQ_ENTRY(rte_vdev_driver) next;
	struct rte_driver driver;
	int (*probe)(struct rte_vdev_device *dev);
	int (*remove)(struct rte_vdev_device *dev);
	int (*dma_map)(struct rte_vdev_device *dev, void *addr, uint64_t iova, size_t len);
	int (*dma_unmap)(struct rte_vdev_device *dev, void *addr, uint64_t iova, size_t len);
	uint32_t drv_flags;
};
_Static_assert(offsetof(struct rte_vdev_driver, probe) == 0x30, "vdev probe");

void rte_vdev_register(struct rte_vdev_driver *driver);
void rte_vdev_unregister(struct rte_vdev_driver *driver);

static inline struct rte_device *mpops_vdev_device(struct rte_vdev_device *v)
{
	return (struct rte_device *)(void *)v->device;
}

/* ---- ethdev ------------------------------------------------------------- */

struct rte_eth_dev;
struct rte_eth_rxtx_callback;

typedef int (*mpops_eth_op_t)(struct rte_eth_dev *dev);

/* DPDK's eth_dev_ops, up to tx_queue_release: 47 ops, in DPDK's order. */
struct eth_dev_ops {
	int (*dev_configure)(struct rte_eth_dev *dev);
	int (*dev_start)(struct rte_eth_dev *dev);
	int (*dev_stop)(struct rte_eth_dev *dev);
	mpops_eth_op_t dev_set_link_up, dev_set_link_down;
	int (*dev_close)(struct rte_eth_dev *dev);
	mpops_eth_op_t dev_reset;
	int (*link_update)(struct rte_eth_dev *dev, int wait_to_complete);
	mpops_eth_op_t is_removed;
	int (*promiscuous_enable)(struct rte_eth_dev *dev);
	int (*promiscuous_disable)(struct rte_eth_dev *dev);
	int (*allmulticast_enable)(struct rte_eth_dev *dev);
	int (*allmulticast_disable)(struct rte_eth_dev *dev);
	void *mac_addr_remove, *mac_addr_add, *mac_addr_set, *set_mc_addr_list, *mtu_set;
	int (*stats_get)(struct rte_eth_dev *dev, struct rte_eth_stats *stats);
	int (*stats_reset)(struct rte_eth_dev *dev);
	int (*xstats_get)(struct rte_eth_dev *dev, struct rte_eth_xstat *stats, unsigned int n);
	void *xstats_reset;
	int (*xstats_get_names)(struct rte_eth_dev *dev, struct rte_eth_xstat_name *names,
				unsigned int size);
	void *queue_stats_mapping_set;
	int (*dev_infos_get)(struct rte_eth_dev *dev, struct rte_eth_dev_info *info);
	void *rxq_info_get, *txq_info_get, *rx_burst_mode_get, *tx_burst_mode_get,
		*fw_version_get, *dev_supported_ptypes_get, *dev_ptypes_set, *vlan_filter_set,
		*vlan_tpid_set, *vlan_strip_queue_set, *vlan_offload_set, *vlan_pvid_set,
		*rx_queue_start, *rx_queue_stop, *tx_queue_start, *tx_queue_stop;
	int (*rx_queue_setup)(struct rte_eth_dev *dev, uint16_t qid, uint16_t nb_desc,
			      unsigned int socket_id, const struct rte_eth_rxconf *conf,
			      struct rte_mempool *mp);
	void (*rx_queue_release)(struct rte_eth_dev *dev, uint16_t qid);
	void *rx_queue_intr_enable, *rx_queue_intr_disable;
	int (*tx_queue_setup)(struct rte_eth_dev *dev, uint16_t qid, uint16_t nb_desc,
			      unsigned int socket_id, const struct rte_eth_txconf *conf);
	void (*tx_queue_release)(struct rte_eth_dev *dev, uint16_t qid);
	/* ... more ops follow in DPDK; ethdev reads them, so a table of this
	 * type must be followed by zeroes: see struct mpops_eth_dev_ops. */
};
_Static_assert(offsetof(struct eth_dev_ops, link_update) == 0x38, "link_update");
_Static_assert(offsetof(struct eth_dev_ops, promiscuous_enable) == 0x48, "promiscuous_enable");
_Static_assert(offsetof(struct eth_dev_ops, stats_get) == 0x90, "stats_get");
_Static_assert(offsetof(struct eth_dev_ops, xstats_get) == 0xa0, "xstats_get");
_Static_assert(offsetof(struct eth_dev_ops, dev_infos_get) == 0xc0, "dev_infos_get");
_Static_assert(offsetof(struct eth_dev_ops, rx_queue_setup) == 0x148, "rx_queue_setup");
_Static_assert(offsetof(struct eth_dev_ops, tx_queue_setup) == 0x168, "tx_queue_setup");

/* DPDK 22.11's eth_dev_ops has 85 members; ethdev reads any of them (NULL:
 * -ENOTSUP). The shim's table is this: its ops, then zeroes to past the end. */
struct mpops_eth_dev_ops {
	struct eth_dev_ops ops;
	void *rest[128];
};

struct rte_eth_dev {
	uint16_t (*rx_pkt_burst)(void *rxq, struct rte_mbuf **pkts, uint16_t n);
	uint16_t (*tx_pkt_burst)(void *txq, struct rte_mbuf **pkts, uint16_t n);
	void *tx_pkt_prepare, *rx_queue_count, *rx_descriptor_status, *tx_descriptor_status;
	struct rte_eth_dev_data *data;
	void *process_private;
	const struct eth_dev_ops *dev_ops;
	struct rte_device *device;
	struct rte_intr_handle *intr_handle;
	void *link_intr_cbs[2];
	struct rte_eth_rxtx_callback *post_rx_burst_cbs[RTE_MAX_QUEUES_PER_PORT];
	struct rte_eth_rxtx_callback *pre_tx_burst_cbs[RTE_MAX_QUEUES_PER_PORT];
	int state;
	void *security_ctx;
} __rte_cache_aligned;
_Static_assert(offsetof(struct rte_eth_dev, data) == 0x30, "eth_dev data");
_Static_assert(offsetof(struct rte_eth_dev, dev_ops) == 0x40, "eth_dev dev_ops");
_Static_assert(offsetof(struct rte_eth_dev, state) == 0x4068, "eth_dev state");
_Static_assert(sizeof(struct rte_eth_dev) == 0x4080, "eth_dev size (rte_eth_devices stride)");

/* The shared part of an ethdev: "no function pointers, safe in shared memory". */
struct rte_eth_dev_data {
	char name[RTE_ETH_NAME_MAX_LEN];
	void **rx_queues;
	void **tx_queues;
	uint16_t nb_rx_queues;
	uint16_t nb_tx_queues;
	struct rte_eth_dev_sriov sriov;
	void *dev_private;
	struct rte_eth_link dev_link;
	struct rte_eth_conf dev_conf;
	uint16_t mtu;
	uint32_t min_rx_buf_size;
	uint64_t rx_mbuf_alloc_failed;
	struct rte_ether_addr *mac_addrs;
	uint64_t mac_pool_sel[RTE_ETH_NUM_RECEIVE_MAC_ADDR];
	struct rte_ether_addr *hash_mac_addrs;
	uint16_t port_id;
	uint8_t flags;		/* promiscuous, scattered_rx, all_multicast, dev_started, ... */
	uint8_t rx_queue_state[RTE_MAX_QUEUES_PER_PORT];
	uint8_t tx_queue_state[RTE_MAX_QUEUES_PER_PORT];
	uint32_t dev_flags;
	int numa_node;
	/* ... more fields follow in DPDK; never allocated here. */
};
_Static_assert(offsetof(struct rte_eth_dev_data, nb_rx_queues) == 0x50, "nb_rx_queues");
_Static_assert(offsetof(struct rte_eth_dev_data, dev_private) == 0x60, "dev_private");
_Static_assert(offsetof(struct rte_eth_dev_data, dev_link) == 0x68, "dev_link");
_Static_assert(offsetof(struct rte_eth_dev_data, mtu) == 0x950, "mtu");
_Static_assert(offsetof(struct rte_eth_dev_data, rx_mbuf_alloc_failed) == 0x958, "nombuf");
_Static_assert(offsetof(struct rte_eth_dev_data, mac_addrs) == 0x960, "mac_addrs");
_Static_assert(offsetof(struct rte_eth_dev_data, port_id) == 0xd70, "port_id");
_Static_assert(offsetof(struct rte_eth_dev_data, dev_flags) == 0x1574, "dev_flags");

extern struct rte_eth_dev rte_eth_devices[];

struct rte_eth_dev *rte_eth_dev_allocate(const char *name);
struct rte_eth_dev *rte_eth_dev_allocated(const char *name);
struct rte_eth_dev *rte_eth_dev_attach_secondary(const char *name);
int rte_eth_dev_release_port(struct rte_eth_dev *eth_dev);
void rte_eth_dev_probing_finish(struct rte_eth_dev *dev);

#endif /* MPOPS_PMD_DPDK_ABI_H */
