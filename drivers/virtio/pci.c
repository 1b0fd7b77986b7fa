/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio-pci transports: "pci-legacy" (the virtio 0.9.5 header in I/O
 * BAR0) and "pci-modern" (the virtio 1.x capabilities in memory BARs), the
 * origin's hw->modern switch. The primary probes the device and stores
 * the chosen transport's ops ID; each process then reaches the device its
 * own way, kept in its per-process slot:
 *
 *   uio_pci_generic  legacy: iopl(3) and in/out on the port the primary
 *                    read from BAR0; modern: its own mmap of the sysfs
 *                    resource file of each BAR the capabilities use.
 *   vfio-pci         the device fd (the primary opens the group and the
 *                    container; a secondary gets a copy of the device fd
 *                    over the control channel): legacy: pread/pwrite on
 *                    region 0; modern: mmap of the BAR regions.
 *
 * The device reaches memory by physical address (uio; legacy virtio, whose
 * DMA bypasses the IOMMU) or through the IOMMU (vfio), where the primary
 * maps every hugepage of the region at its physical address: so in both
 * cases a device address is mpops_region_iova() of a region offset, and the
 * region must be created with MPOPS_REGION_F_PHYS.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <linux/virtio_pci.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vtnet_priv.h"

#define vt_err(...) mpops_log(MPOPS_LOG_ERR, __VA_ARGS__)
#define vt_warn(...) mpops_log(MPOPS_LOG_WARN, __VA_ARGS__)
#define vt_info(...) mpops_log(MPOPS_LOG_INFO, __VA_ARGS__)

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_NET_LEGACY_ID 0x1000	/* transitional or legacy */
#define VIRTIO_NET_MODERN_ID 0x1041
#define LEGACY_NET_SUBSYS 1

/* One process's way to the device. */
struct vtpci_access {
	int kind;			/* enum vtpci_access_kind */
	int cfg_fd;			/* uio: sysfs config; vfio: the device fd */
	uint64_t cfg_base;		/* vfio: the config region's offset */
	int dev_fd;			/* vfio: the device fd (owned) */
	uint64_t io_off;		/* legacy, vfio: region 0's offset */
	uint16_t io_port;		/* legacy, uio */
	int modern;
	void *bar[6];
	size_t bar_len[6];
	volatile uint8_t *cfg[VTPCI_CFG_N]; /* modern: each structure, mapped */
	uint32_t notify_mult;
};

/* The primary's device: its own access plus what only it holds. */
struct vtpci_dev {
	struct vtnet_port *p;
	struct vtpci_access acc;
	int container;			/* vfio */
	int group;
	pthread_t mon;			/* watches the device status */
	int mon_running;
	_Atomic int mon_stop;
	_Atomic int started;
	int opened;			/* acc is the full access (not the probe's) */
};

/* ==== sysfs ============================================================= */

static int sysfs_path(char *buf, size_t len, const char *addr, const char *file)
{
	int n = snprintf(buf, len, "/sys/bus/pci/devices/%s/%s", addr, file);

	return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

/* The name of the driver @addr is bound to ("" for none). */
static int pci_driver(const char *addr, char *drv, size_t len)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;

	if (sysfs_path(path, sizeof(path), addr, "") < 0)
		return -EINVAL;
	if (access(path, F_OK) < 0)
		return -ENOENT;
	if (sysfs_path(path, sizeof(path), addr, "driver") < 0)
		return -EINVAL;
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		drv[0] = '\0';
		return 0;
	}
	link[n] = '\0';
	strlcpy(drv, strrchr(link, '/') ? strrchr(link, '/') + 1 : link, len);
	return 0;
}

/* dddd:bb:dd.f, or bb:dd.f in domain 0. */
static int addr_norm(const char *in, char *out, size_t len)
{
	unsigned dom = 0, bus, dev, fn;
	char tail;

	if (sscanf(in, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) != 4) {
		dom = 0;
		if (sscanf(in, "%x:%x.%x%c", &bus, &dev, &fn, &tail) != 3)
			return -EINVAL;
	}
	if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
		return -EINVAL;
	snprintf(out, len, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

/* ==== config space ====================================================== */

static int cfg_read(const struct vtpci_access *a, uint32_t off, void *buf, size_t len)
{
	ssize_t n = pread(a->cfg_fd, buf, len, (off_t)(a->cfg_base + off));

	return n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
}

static int cfg_write(const struct vtpci_access *a, uint32_t off, const void *buf, size_t len)
{
	ssize_t n = pwrite(a->cfg_fd, buf, len, (off_t)(a->cfg_base + off));

	return n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
}

/* The device must master the bus to reach the rings: neither uio_pci_generic
 * nor vfio-pci turns that on. */
static int bus_master_on(const struct vtpci_access *a)
{
	uint16_t cmd;
	int rc;

	if ((rc = cfg_read(a, PCI_COMMAND, &cmd, 2)) < 0)
		return rc;
	if ((cmd & (PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY | PCI_COMMAND_IO)) ==
	    (PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY | PCI_COMMAND_IO))
		return 0;
	cmd |= PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
	return cfg_write(a, PCI_COMMAND, &cmd, 2);
}

/* Walk the capability list for the virtio structures (virtio 1.x 4.1.4). */
static int caps_find(const struct vtpci_access *a, struct vtnet_pci_shared *ps)
{
	uint16_t status;
	uint8_t pos, seen = 0;
	int found = 0;

	if (cfg_read(a, PCI_STATUS, &status, 2) < 0 || !(status & PCI_STATUS_CAP_LIST))
		return 0;
	if (cfg_read(a, PCI_CAPABILITY_LIST, &pos, 1) < 0)
		return 0;
	while (pos >= 0x40 && seen++ < 48) {
		struct virtio_pci_cap cap;

		if (cfg_read(a, pos, &cap, sizeof(cap)) < 0)
			return 0;
		if (cap.cap_vndr == PCI_CAP_ID_VNDR && cap.cfg_type >= VIRTIO_PCI_CAP_COMMON_CFG &&
		    cap.cfg_type <= VIRTIO_PCI_CAP_DEVICE_CFG && cap.bar < 6) {
			int i = cap.cfg_type - 1;	/* common 1, notify 2, isr 3, device 4 */

			if (!(found & (1 << i))) {
				ps->cfg_bar[i] = cap.bar;
				ps->cfg_off[i] = cap.offset;
				ps->cfg_len[i] = cap.length;
				found |= 1 << i;
				if (cap.cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG &&
				    cfg_read(a, pos + VIRTIO_PCI_NOTIFY_CAP_MULT, &ps->notify_mult, 4) < 0)
					return 0;
			}
		}
		pos = cap.cap_next;
	}
	return found == 0xf;
}

/* ==== legacy registers (I/O BAR0) ======================================= */

static uint32_t io_read(const struct vtpci_access *a, uint32_t reg, int width)
{
	uint32_t v = 0;

	if (a->kind == VTPCI_VFIO) {
		if (pread(a->dev_fd, &v, (size_t)width, (off_t)(a->io_off + reg)) != width)
			return UINT32_MAX;
		return v;
	}
	switch (width) {
	case 1: return inb((uint16_t)(a->io_port + reg));
	case 2: return inw((uint16_t)(a->io_port + reg));
	default: return inl((uint16_t)(a->io_port + reg));
	}
}

static void io_write(const struct vtpci_access *a, uint32_t reg, uint32_t v, int width)
{
	if (a->kind == VTPCI_VFIO) {
		if (pwrite(a->dev_fd, &v, (size_t)width, (off_t)(a->io_off + reg)) != width)
			vt_warn("vtnet: legacy register %#x write through vfio failed: %s", reg,
				strerror(errno));
		return;
	}
	switch (width) {
	case 1: outb((uint8_t)v, (uint16_t)(a->io_port + reg)); break;
	case 2: outw((uint16_t)v, (uint16_t)(a->io_port + reg)); break;
	default: outl(v, (uint16_t)(a->io_port + reg)); break;
	}
}

/* ==== modern registers (memory BARs) ==================================== */

#define COMMON(a, field) ((a)->cfg[VTPCI_CFG_COMMON] + offsetof(struct virtio_pci_common_cfg, field))

static inline uint8_t mmio_r8(volatile uint8_t *p) { return *p; }
static inline uint16_t mmio_r16(volatile uint8_t *p) { return *(volatile uint16_t *)p; }
static inline uint32_t mmio_r32(volatile uint8_t *p) { return *(volatile uint32_t *)p; }
static inline void mmio_w8(volatile uint8_t *p, uint8_t v) { *p = v; }
static inline void mmio_w16(volatile uint8_t *p, uint16_t v) { *(volatile uint16_t *)p = v; }
static inline void mmio_w32(volatile uint8_t *p, uint32_t v) { *(volatile uint32_t *)p = v; }
static inline void mmio_w64(volatile uint8_t *p, uint64_t v)
{
	/* Two 32-bit writes, low first: what the spec asks of 64-bit fields. */
	mmio_w32(p, (uint32_t)v);
	mmio_w32(p + 4, (uint32_t)(v >> 32));
}

/* ==== access: open and close (any process) ============================== */

static void access_close(struct vtpci_access *a)
{
	for (int i = 0; i < 6; i++)
		if (a->bar[i])
			munmap(a->bar[i], a->bar_len[i]);
	if (a->kind == VTPCI_UIO && a->cfg_fd >= 0)
		close(a->cfg_fd);
	if (a->dev_fd >= 0)
		close(a->dev_fd);
	memset(a, 0, sizeof(*a));
	a->cfg_fd = a->dev_fd = -1;
}

static int vfio_region(int dev_fd, uint32_t index, struct vfio_region_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	ri->argsz = sizeof(*ri);
	ri->index = index;
	return ioctl(dev_fd, VFIO_DEVICE_GET_REGION_INFO, ri) < 0 ? -errno : 0;
}

/* Map BAR @bar for this process. */
static int bar_map(struct vtpci_access *a, const char *addr, int bar)
{
	char path[PATH_MAX];
	void *m;
	size_t len;
	off_t off = 0;
	int fd, rc;

	if (a->bar[bar])
		return 0;
	if (a->kind == VTPCI_VFIO) {
		struct vfio_region_info ri;

		if ((rc = vfio_region(a->dev_fd, VFIO_PCI_BAR0_REGION_INDEX + (uint32_t)bar, &ri)) < 0)
			return rc;
		if (!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP) || ri.size == 0) {
			vt_err("vtnet: BAR%d of %s cannot be mapped through vfio (flags %#x): the device's virtio structures must be in a mappable BAR",
			       bar, addr, ri.flags);
			return -ENOTSUP;
		}
		len = ri.size;
		off = (off_t)ri.offset;
		fd = a->dev_fd;
	} else {
		struct stat st;

		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource%d", addr, bar);
		if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
			rc = -errno;
			vt_err("vtnet: cannot open %s: %s%s", path, strerror(-rc),
			       rc == -EACCES || rc == -EPERM ? ": device access needs root" : "");
			return rc;
		}
		if (fstat(fd, &st) < 0 || st.st_size <= 0) {
			close(fd);
			vt_err("vtnet: %s has no size: BAR%d is not a memory BAR", path, bar);
			return -ENOTSUP;
		}
		len = (size_t)st.st_size;
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
	rc = m == MAP_FAILED ? -errno : 0;
	if (a->kind != VTPCI_VFIO)
		close(fd);
	if (rc < 0) {
		vt_err("vtnet: cannot map BAR%d of %s: %s", bar, addr, strerror(-rc));
		return rc;
	}
	a->bar[bar] = m;
	a->bar_len[bar] = len;
	return 0;
}

/*
 * Open this process's access to the device @ps describes (the primary
 * filled it at probe). @dev_fd: vfio only, the device fd (consumed).
 */
static int access_open(const struct vtnet_pci_shared *ps, int dev_fd, struct vtpci_access *a)
{
	char path[PATH_MAX], drv[64];
	int rc;

	memset(a, 0, sizeof(*a));
	a->cfg_fd = a->dev_fd = -1;
	a->kind = (int)ps->access;
	a->modern = (int)ps->modern;
	a->notify_mult = ps->notify_mult;
	if (a->kind == VTPCI_VFIO) {
		struct vfio_region_info ri;

		a->dev_fd = a->cfg_fd = dev_fd;
		if ((rc = vfio_region(dev_fd, VFIO_PCI_CONFIG_REGION_INDEX, &ri)) < 0)
			goto fail;
		a->cfg_base = ri.offset;
		if (!a->modern) {
			if ((rc = vfio_region(dev_fd, VFIO_PCI_BAR0_REGION_INDEX, &ri)) < 0)
				goto fail;
			a->io_off = ri.offset;
		}
	} else {
		if ((rc = pci_driver(ps->addr, drv, sizeof(drv))) < 0 || strcmp(drv, "uio_pci_generic")) {
			vt_err("vtnet: PCI device %s is %s%s, not to uio_pci_generic: bind it (driver_override) before starting this process",
			       ps->addr, rc < 0 ? "gone" : drv[0] ? "bound to " : "bound to no driver",
			       rc < 0 ? "" : drv);
			return -ENODEV;
		}
		sysfs_path(path, sizeof(path), ps->addr, "config");
		if ((a->cfg_fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
			rc = -errno;
			vt_err("vtnet: cannot open %s: %s", path, strerror(-rc));
			return rc;
		}
		if (!a->modern) {
			/* Port I/O for this process; in/out then work anywhere in it. */
			if (iopl(3) < 0) {
				rc = -errno;
				vt_err("vtnet: PCI device %s: no I/O port access for this process (iopl: %s): legacy virtio needs root (CAP_SYS_RAWIO)",
				       ps->addr, strerror(-rc));
				goto fail;
			}
			a->io_port = (uint16_t)ps->io_port;
		}
	}
	if (a->modern) {
		for (int i = 0; i < VTPCI_CFG_N; i++) {
			int bar = ps->cfg_bar[i];

			if ((rc = bar_map(a, ps->addr, bar)) < 0)
				goto fail;
			if ((uint64_t)ps->cfg_off[i] + ps->cfg_len[i] > a->bar_len[bar]) {
				vt_err("vtnet: PCI device %s: virtio structure %d lies past the end of BAR%d",
				       ps->addr, i, bar);
				rc = -EPROTO;
				goto fail;
			}
			a->cfg[i] = (volatile uint8_t *)a->bar[bar] + ps->cfg_off[i];
		}
	}
	return 0;
fail:
	access_close(a);
	return rc;
}

/* ==== vfio: group, container, DMA (primary) ============================= */

static int vfio_open(struct vtpci_dev *d, const char *addr, const struct mpops_region *r, int *dev_fd)
{
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	char path[PATH_MAX], link[PATH_MAX];
	size_t page = mpops_region_page_size(r);
	struct mpops_region_dev dev;
	ssize_t n;
	int rc;

	sysfs_path(path, sizeof(path), addr, "iommu_group");
	if ((n = readlink(path, link, sizeof(link) - 1)) < 0) {
		vt_err("vtnet: PCI device %s has no IOMMU group: vfio-pci needs an IOMMU (intel_iommu=on)", addr);
		return -ENODEV;
	}
	link[n] = '\0';
	snprintf(path, sizeof(path), "/dev/vfio/%s", strrchr(link, '/') + 1);
	if ((d->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC)) < 0) {
		rc = -errno;
		vt_err("vtnet: cannot open /dev/vfio/vfio: %s (load vfio-pci)", strerror(-rc));
		return rc;
	}
	if (ioctl(d->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    ioctl(d->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) <= 0) {
		vt_err("vtnet: this kernel's vfio has no type-1 IOMMU");
		return -ENOTSUP;
	}
	if ((d->group = open(path, O_RDWR | O_CLOEXEC)) < 0) {
		rc = -errno;
		vt_err("vtnet: cannot open %s for PCI device %s: %s%s", path, addr, strerror(-rc),
		       rc == -EBUSY ? " (another process holds the group)" : "");
		return rc;
	}
	if (ioctl(d->group, VFIO_GROUP_GET_STATUS, &gs) < 0 || !(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		vt_err("vtnet: IOMMU group %s is not viable: bind every device in it to vfio-pci", path);
		return -EBUSY;
	}
	if (ioctl(d->group, VFIO_GROUP_SET_CONTAINER, &d->container) < 0 ||
	    ioctl(d->container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) < 0) {
		rc = -errno;
		vt_err("vtnet: cannot set up the vfio container for %s: %s", addr, strerror(-rc));
		return rc;
	}
	/* Every hugepage of the device part (the device reaches nothing else)
	 * at its physical address: IOVA = physical address, so the device
	 * addresses are the same as without the IOMMU. */
	mpops_region_dev(r, &dev);
	for (size_t off = dev.off; off < dev.off + dev.size; off += page) {
		struct vfio_iommu_type1_dma_map m = {
			.argsz = sizeof(m),
			.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
			.vaddr = (uint64_t)(uintptr_t)mpops_region_base(r) + off,
			.size = page,
		};

		uint64_t iova;

		if ((rc = mpops_region_iova(r, off, page, &iova)) < 0)
			return rc;
		m.iova = iova;
		if (ioctl(d->container, VFIO_IOMMU_MAP_DMA, &m) < 0) {
			rc = -errno;
			vt_err("vtnet: cannot map the region's page at %#zx for DMA: %s", off, strerror(-rc));
			return rc;
		}
	}
	if ((*dev_fd = ioctl(d->group, VFIO_GROUP_GET_DEVICE_FD, addr)) < 0) {
		rc = -errno;
		vt_err("vtnet: cannot get vfio device fd of %s: %s", addr, strerror(-rc));
		return rc;
	}
	return 0;
}

/* ==== status and reset ================================================== */

static uint8_t status_get(const struct vtpci_access *a)
{
	return a->modern ? mmio_r8(COMMON(a, device_status))
			 : (uint8_t)io_read(a, VIRTIO_PCI_STATUS, 1);
}

static void status_set(const struct vtpci_access *a, uint8_t s)
{
	if (a->modern)
		mmio_w8(COMMON(a, device_status), s);
	else
		io_write(a, VIRTIO_PCI_STATUS, s, 1);
}

static int device_reset(const struct vtpci_access *a)
{
	struct timespec ts = { 0, 1000000 };

	status_set(a, 0);
	/* Modern: the reset is done when the status reads 0 again. */
	for (int i = 0; i < 1000; i++) {
		if (status_get(a) == 0)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

static void status_add(const struct vtpci_access *a, uint8_t bits)
{
	status_set(a, (uint8_t)(status_get(a) | bits));
}

/* ==== the device, through the creator's access ========================= */

/* The transport's shared block (vtnet_port_shared.tr_off). */
static struct vtnet_pci_shared *ps_of(const struct vtnet_port *p)
{
	return mpops_ptr(p->base, p->sh->tr_off);
}

static struct vtpci_access *acc_of(struct vtnet_port *p)
{
	return p->pci ? &p->pci->acc : NULL;
}

static int pci_get_features(struct vtnet_port *p, uint64_t *features)
{
	struct vtpci_access *a = acc_of(p);

	if (!a)
		return -EPERM;
	if (a->modern) {
		mmio_w32(COMMON(a, device_feature_select), 0);
		*features = mmio_r32(COMMON(a, device_feature));
		mmio_w32(COMMON(a, device_feature_select), 1);
		*features |= (uint64_t)mmio_r32(COMMON(a, device_feature)) << 32;
	} else {
		*features = io_read(a, VIRTIO_PCI_HOST_FEATURES, 4);
	}
	return 0;
}

static int pci_set_features(struct vtnet_port *p, uint64_t features)
{
	struct vtpci_access *a = acc_of(p);

	if (!a)
		return -EPERM;
	if (!a->modern) {
		io_write(a, VIRTIO_PCI_GUEST_FEATURES, (uint32_t)features, 4);
		return 0;
	}
	mmio_w32(COMMON(a, guest_feature_select), 0);
	mmio_w32(COMMON(a, guest_feature), (uint32_t)features);
	mmio_w32(COMMON(a, guest_feature_select), 1);
	mmio_w32(COMMON(a, guest_feature), (uint32_t)(features >> 32));
	status_add(a, VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(status_get(a) & VIRTIO_CONFIG_S_FEATURES_OK)) {
		vt_err("vtnet %s: the device refused features %#llx (FEATURES_OK not kept)",
		       p->sh->name, (unsigned long long)features);
		return -ENOTSUP;
	}
	return 0;
}

static int pci_read_config(struct vtnet_port *p, uint32_t off, void *buf, uint32_t len)
{
	struct vtpci_access *a = acc_of(p);
	uint8_t *b = buf;

	if (!a)
		return -EPERM;
	if (off > sizeof(struct virtio_net_config) || len > sizeof(struct virtio_net_config) - off)
		return -ERANGE;
	for (uint32_t i = 0; i < len; i++)
		b[i] = a->modern ? mmio_r8(a->cfg[VTPCI_CFG_DEVICE] + off + i)
				 : (uint8_t)io_read(a, VIRTIO_PCI_CONFIG_OFF(0) + off + i, 1);
	return 0;
}

static int pci_setup_queue(struct vtnet_port *p, uint16_t vq)
{
	struct vtpci_access *a = acc_of(p);
	struct vq *q = &p->vq[vq];
	uint64_t desc;

	if (!a)
		return -EPERM;
	desc = vq_iova(p, q->sh->desc_off);
	if (!a->modern) {
		io_write(a, VIRTIO_PCI_QUEUE_SEL, vq, 2);
		io_write(a, VIRTIO_PCI_QUEUE_PFN, (uint32_t)(desc >> VIRTIO_PCI_QUEUE_ADDR_SHIFT), 4);
		return 0;
	}
	mmio_w16(COMMON(a, queue_select), vq);
	mmio_w16(COMMON(a, queue_size), q->sh->size);
	mmio_w64(COMMON(a, queue_desc_lo), desc);
	mmio_w64(COMMON(a, queue_avail_lo), vq_iova(p, q->sh->avail_off));
	mmio_w64(COMMON(a, queue_used_lo), vq_iova(p, q->sh->used_off));
	ps_of(p)->notify_off[vq] = mmio_r16(COMMON(a, queue_notify_off));
	mmio_w16(COMMON(a, queue_enable), 1);
	return 0;
}

/* ==== notify_queue, per process ========================================= */

/* Through this process's own access, from its slot: iopl + the port, or
 * its own mapping of the notify structure. */
static int pci_legacy_notify(struct vtnet_port *p, struct vtnet_slot *s, uint16_t vq)
{
	struct vtpci_access *a = s ? s->pci : NULL;

	(void)p;
	if (!a)
		return -ENOTCONN;
	io_write(a, VIRTIO_PCI_QUEUE_NOTIFY, vq, 2);
	return 0;
}

static int pci_modern_notify(struct vtnet_port *p, struct vtnet_slot *s, uint16_t vq)
{
	struct vtpci_access *a = s ? s->pci : NULL;

	if (!a)
		return -ENOTCONN;
	mmio_w16(a->cfg[VTPCI_CFG_NOTIFY] + (uint32_t)ps_of(p)->notify_off[vq] * a->notify_mult, vq);
	return 0;
}

static const struct vtpci_ops pci_legacy_ops = { .notify_queue = pci_legacy_notify };
static const struct vtpci_ops pci_modern_ops = { .notify_queue = pci_modern_notify };
MPOPS_OPS_IMPL(vtpci, pci_legacy, &pci_legacy_ops)
MPOPS_OPS_IMPL(vtpci, pci_modern, &pci_modern_ops)

/* ==== probe and life cycle (primary) ==================================== */

/* Read the legacy BAR0's port from the sysfs resource table (uio). */
static int legacy_port(const char *addr, uint32_t *port)
{
	char path[PATH_MAX];
	unsigned long long start, end, flags;
	FILE *f;
	int ok;

	sysfs_path(path, sizeof(path), addr, "resource");
	if (!(f = fopen(path, "re")))
		return -errno;
	ok = fscanf(f, "%llx %llx %llx", &start, &end, &flags) == 3;
	fclose(f);
	if (!ok || !(flags & 0x100 /* IORESOURCE_IO */) || start == 0 || start > 0xffff) {
		vt_err("vtnet: PCI device %s: BAR0 is not an I/O BAR: no legacy virtio interface", addr);
		return -ENODEV;
	}
	*port = (uint32_t)start;
	return 0;
}

/* The device's queue sizes, for the queues the port will use. */
static void queue_sizes(struct vtnet_port *p, const struct vtpci_access *a, uint16_t nvq)
{
	for (uint16_t i = 0; i < nvq && i < VTNET_MAX_VQ; i++) {
		if (a->modern) {
			mmio_w16(COMMON(a, queue_select), i);
			ps_of(p)->qsize_max[i] = mmio_r16(COMMON(a, queue_size));
		} else {
			io_write(a, VIRTIO_PCI_QUEUE_SEL, i, 2);
			ps_of(p)->qsize_max[i] = (uint16_t)io_read(a, VIRTIO_PCI_QUEUE_NUM, 2);
		}
	}
}

/* The link, and a device reset behind our back. */
static void *monitor(void *arg)
{
	struct vtpci_dev *d = arg;
	struct vtnet_port *p = d->p;
	struct timespec ts = { 0, 50 * 1000000 };

	while (!atomic_load(&d->mon_stop)) {
		nanosleep(&ts, NULL);
		if (!atomic_load(&d->started))
			continue;
		uint8_t st = status_get(&d->acc);

		if (st == 0xff || !(st & VIRTIO_CONFIG_S_DRIVER_OK) ||
		    (st & VIRTIO_CONFIG_S_NEEDS_RESET)) {
			/* Stop every burst; the primary stops and starts the port again. */
			char why[192];

			snprintf(why, sizeof(why), "PCI device %s %s (status %#x): link down, bursts stopped; stop and start the port to recover",
				 ps_of(p)->addr,
				 st == 0 ? "was reset"
				 : st == 0xff ? "does not answer (removed, or its decoding turned off)"
				 : (st & VIRTIO_CONFIG_S_NEEDS_RESET) ? "failed and needs a reset"
				 : "stopped the driver (DRIVER_OK cleared: bus mastering turned off?)",
				 st);
			mpops_port_lost(p->port, why);	/* logged once: -EALREADY after */
			continue;
		}
		if (p->sh->features & BIT64(VIRTIO_NET_F_STATUS)) {
			uint16_t ls = 0;
			uint16_t up;

			pci_read_config(p, offsetof(struct virtio_net_config, status), &ls, 2);
			up = (ls & VIRTIO_NET_S_LINK_UP) ? 1 : 0;
			if (mpops_port_link_set(p->port, up)) {
				vt_info("vtnet %s: link %s", p->sh->name, up ? "up" : "down");
			}
		}
	}
	return NULL;
}

static int vtpci_dev_destroy(struct vtnet_port *p);

static int vtpci_dev_create(struct vtnet_port *p, const struct vtnet_conf *c)
{
	struct vtnet_port_shared *sh = p->sh;
	struct vtnet_pci_shared *ps;
	uint8_t *mac = mpops_port_mac(p->port);
	struct vtpci_dev *d;
	char path[PATH_MAX], drv[64];
	uint16_t vendor, device, subsys;
	int want_modern = -1, has_modern, has_legacy, dev_fd = -1, rc;
	uint64_t feat = 0;

	/* The transport's own shared block: every process finds the device there. */
	if ((rc = mpops_alloc(p->r, sizeof(*ps), 64, "vtnet.pci", &sh->tr_off)) < 0)
		return rc;
	ps = ps_of(p);
	memset(ps, 0, sizeof(*ps));
	if (!c->pci_addr || addr_norm(c->pci_addr, ps->addr, sizeof(ps->addr)) < 0) {
		vt_err("vtnet %s: transport %s needs .pci_addr as dddd:bb:dd.f, not '%s'", sh->name,
		       c->transport, c->pci_addr ? c->pci_addr : "(null)");
		rc = -EINVAL;
		goto fail;
	}
	if (strcmp(c->transport, "pci-legacy") == 0)
		want_modern = 0;
	else if (strcmp(c->transport, "pci-modern") == 0)
		want_modern = 1;
	if (mpops_region_iova_mode(p->r) != MPOPS_IOVA_PA) {
		vt_err("vtnet %s: a PCI device reaches memory by physical address: create region '%s' with MPOPS_REGION_F_PHYS on hugepages",
		       sh->name, mpops_region_name(p->r));
		rc = -EINVAL;
		goto fail;
	}
	if ((rc = pci_driver(ps->addr, drv, sizeof(drv))) < 0) {
		vt_err("vtnet %s: no PCI device %s", sh->name, ps->addr);
		rc = -ENODEV;
		goto fail;
	}
	if (strcmp(drv, "uio_pci_generic") == 0) {
		ps->access = VTPCI_UIO;
	} else if (strcmp(drv, "vfio-pci") == 0) {
		ps->access = VTPCI_VFIO;
	} else {
		vt_err("vtnet %s: PCI device %s is %s%s: bind it to uio_pci_generic or vfio-pci (driver_override, then drivers_probe)",
		       sh->name, ps->addr, drv[0] ? "bound to " : "bound to no driver", drv);
		rc = -ENODEV;
		goto fail;
	}
	if (!(d = calloc(1, sizeof(*d)))) {
		rc = -ENOMEM;
		goto fail;
	}
	d->p = p;
	d->container = d->group = -1;
	d->acc.cfg_fd = d->acc.dev_fd = -1;
	p->pci = d;

	/* Config space: first through whatever reaches it, to learn the kind. */
	if (ps->access == VTPCI_VFIO) {
		if ((rc = vfio_open(d, ps->addr, p->r, &dev_fd)) < 0)
			goto fail;
		struct vfio_region_info ri;

		/* The device fd stays in dev_fd until the full access takes it. */
		d->acc.kind = VTPCI_VFIO;
		d->acc.cfg_fd = dev_fd;
		if ((rc = vfio_region(dev_fd, VFIO_PCI_CONFIG_REGION_INDEX, &ri)) < 0)
			goto fail;
		d->acc.cfg_base = ri.offset;
	} else {
		d->acc.kind = VTPCI_UIO;
		sysfs_path(path, sizeof(path), ps->addr, "config");
		if ((d->acc.cfg_fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
			rc = -errno;
			vt_err("vtnet %s: cannot open %s: %s", sh->name, path, strerror(-rc));
			goto fail;
		}
	}
	if ((rc = cfg_read(&d->acc, PCI_VENDOR_ID, &vendor, 2)) < 0 ||
	    (rc = cfg_read(&d->acc, PCI_DEVICE_ID, &device, 2)) < 0 ||
	    (rc = cfg_read(&d->acc, PCI_SUBSYSTEM_ID, &subsys, 2)) < 0)
		goto fail;
	if (vendor != VIRTIO_VENDOR ||
	    !(device == VIRTIO_NET_MODERN_ID || (device == VIRTIO_NET_LEGACY_ID && subsys == LEGACY_NET_SUBSYS))) {
		vt_err("vtnet %s: PCI device %s is %04x:%04x (subsystem %04x), not a virtio-net device (1af4:1000 or 1af4:1041)",
		       sh->name, ps->addr, vendor, device, subsys);
		rc = -ENODEV;
		goto fail;
	}
	has_modern = caps_find(&d->acc, ps);
	has_legacy = device == VIRTIO_NET_LEGACY_ID;
	/* The origin's hw->modern: modern when offered, unless told otherwise. */
	ps->modern = (uint32_t)(want_modern >= 0 ? want_modern : has_modern);
	if (ps->modern && !has_modern) {
		vt_err("vtnet %s: PCI device %s has no virtio 1.x capabilities: use transport pci-legacy or pci",
		       sh->name, ps->addr);
		rc = -ENODEV;
		goto fail;
	}
	if (!ps->modern && !has_legacy) {
		vt_err("vtnet %s: PCI device %s is modern only (1af4:1041): use transport pci-modern or pci",
		       sh->name, ps->addr);
		rc = -ENODEV;
		goto fail;
	}
	if (!ps->modern && ps->access == VTPCI_UIO && (rc = legacy_port(ps->addr, &ps->io_port)) < 0)
		goto fail;
	/* Now the whole access, as every process opens it; the probe's config
	 * fd goes (uio), the vfio device fd is handed over. */
	if (ps->access == VTPCI_UIO)
		close(d->acc.cfg_fd);
	d->acc.cfg_fd = d->acc.dev_fd = -1;
	rc = access_open(ps, dev_fd, &d->acc);
	dev_fd = -1;	/* access_open owns it now, closed on failure */
	if (rc < 0)
		goto fail;
	d->opened = 1;
	if ((rc = bus_master_on(&d->acc)) < 0) {
		vt_err("vtnet %s: cannot enable bus mastering on %s: %s", sh->name, ps->addr, strerror(-rc));
		goto fail;
	}
	if ((rc = mpops_ops_id(ps->modern ? &mpops_impl_vtpci_pci_modern : &mpops_impl_vtpci_pci_legacy,
			       &sh->ops_id)) < 0)
		goto fail;

	/* Reset, then ACKNOWLEDGE and DRIVER (virtio 1.x 3.1.1). */
	if ((rc = device_reset(&d->acc)) < 0) {
		vt_err("vtnet %s: PCI device %s did not finish its reset", sh->name, ps->addr);
		goto fail;
	}
	status_add(&d->acc, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	status_add(&d->acc, VIRTIO_CONFIG_S_DRIVER);
	pci_get_features(p, &feat);
	sh->device_features = feat;
	/* A device behind an IOMMU: its DMA goes through the mappings the
	 * primary made (vfio), which it must be told to use. */
	sh->tr_features = BIT64(VIRTIO_F_ACCESS_PLATFORM);
	if (feat & BIT64(VIRTIO_NET_F_MAC))
		pci_read_config(p, offsetof(struct virtio_net_config, mac), mac, 6);
	sh->max_qp = 1;
	if (feat & BIT64(VIRTIO_NET_F_MQ)) {
		uint16_t mq = 0;

		pci_read_config(p, offsetof(struct virtio_net_config, max_virtqueue_pairs), &mq, 2);
		if (mq > 1)
			sh->max_qp = mq > VTNET_MAX_QP ? VTNET_MAX_QP : mq;
	}
	if (feat & BIT64(VIRTIO_NET_F_MTU))
		pci_read_config(p, offsetof(struct virtio_net_config, mtu), &sh->mtu, 2);
	queue_sizes(p, &d->acc, (uint16_t)(2 * sh->max_qp + 1));
	/* The control queue: a legacy device's own size, else at most 64. */
	if (ps->qsize_max[VTNET_CVQ(sh->max_qp)])
		sh->cvq_size = !ps->modern || ps->qsize_max[VTNET_CVQ(sh->max_qp)] < 64
				       ? ps->qsize_max[VTNET_CVQ(sh->max_qp)] : 64;
	if (!ps->modern) {
		/* Legacy queue sizes are the device's: the ring must match. */
		if (c->ring_size && c->ring_size != ps->qsize_max[0])
			vt_info("vtnet %s: legacy device %s has %u-entry queues: ring size %u ignored",
				sh->name, ps->addr, ps->qsize_max[0], c->ring_size);
		sh->ring_size = ps->qsize_max[0];
	} else if (sh->ring_size > ps->qsize_max[0]) {
		vt_err("vtnet %s: ring size %u is more than PCI device %s's queues take (%u)", sh->name,
		       sh->ring_size, ps->addr, ps->qsize_max[0]);
		rc = -EINVAL;
		goto fail;
	}
	if ((rc = pthread_create(&d->mon, NULL, monitor, d)) != 0) {
		rc = -rc;
		goto fail;
	}
	d->mon_running = 1;
	vt_info("vtnet %s: PCI device %s (%04x:%04x) through %s, %s interface, %u queue pair(s), MAC %02x:%02x:%02x:%02x:%02x:%02x",
		sh->name, ps->addr, vendor, device, ps->access == VTPCI_VFIO ? "vfio-pci" : "uio_pci_generic",
		ps->modern ? "modern (virtio 1.x)" : "legacy (virtio 0.9.5)", sh->max_qp, mac[0],
		mac[1], mac[2], mac[3], mac[4], mac[5]);
	return 0;
fail:
	if (dev_fd >= 0)
		close(dev_fd);
	vtpci_dev_destroy(p);
	return rc;
}

static int vtpci_dev_destroy(struct vtnet_port *p)
{
	struct vtpci_dev *d = p->pci;

	if (p->sh->tr_off) {
		mpops_free(p->r, p->sh->tr_off);
		p->sh->tr_off = 0;
	}
	if (!d)
		return 0;
	if (d->mon_running) {
		atomic_store(&d->mon_stop, 1);
		pthread_join(d->mon, NULL);
	}
	if (d->opened)
		device_reset(&d->acc);	/* leave it quiet: no DMA into freed memory */
	if (d->acc.kind == VTPCI_UIO || d->opened)
		access_close(&d->acc);
	if (d->group >= 0)
		close(d->group);
	if (d->container >= 0)
		close(d->container);
	free(d);
	p->pci = NULL;
	return 0;
}

static int vtpci_dev_start(struct vtnet_port *p)
{
	struct vtpci_dev *d = p->pci;
	struct vtnet_port_shared *sh = p->sh;
	uint8_t st;
	int rc;

	/* Bus mastering may have been turned off meanwhile (a driver unbound
	 * and bound again), and without it the device reaches no ring. */
	if ((rc = bus_master_on(&d->acc)) < 0) {
		vt_err("vtnet %s: cannot enable bus mastering on %s: %s", sh->name, ps_of(p)->addr,
		       strerror(-rc));
		return rc;
	}
	/* Create and stop leave it at FEATURES_OK; anything else (reset under
	 * us, still running) starts over with the whole sequence. */
	st = status_get(&d->acc);
	if (st == 0 || (st & VIRTIO_CONFIG_S_DRIVER_OK)) {
		if ((rc = device_reset(&d->acc)) < 0)
			return rc;
		status_add(&d->acc, VIRTIO_CONFIG_S_ACKNOWLEDGE);
		status_add(&d->acc, VIRTIO_CONFIG_S_DRIVER);
		if ((rc = pci_set_features(p, sh->features)) < 0)
			return rc;
	}
	for (uint16_t i = 0; i < VTNET_MAX_VQ; i++) {
		if (!p->vq[i].sh)
			continue;
		if (p->vq[i].sh->size > ps_of(p)->qsize_max[i] && ps_of(p)->qsize_max[i]) {
			vt_err("vtnet %s: queue %u has %u entries, the device takes %u", sh->name, i,
			       p->vq[i].sh->size, ps_of(p)->qsize_max[i]);
			return -EINVAL;
		}
		if ((rc = pci_setup_queue(p, i)) < 0)
			return rc;
	}
	status_add(&d->acc, VIRTIO_CONFIG_S_DRIVER_OK);
	if (status_get(&d->acc) & VIRTIO_CONFIG_S_NEEDS_RESET) {
		vt_err("vtnet %s: PCI device %s failed the start (DEVICE_NEEDS_RESET)", sh->name, ps_of(p)->addr);
		return -EIO;
	}
	if (sh->features & BIT64(VIRTIO_NET_F_STATUS)) {
		uint16_t ls = 0;

		pci_read_config(p, offsetof(struct virtio_net_config, status), &ls, 2);
		mpops_port_link_set(p->port, (ls & VIRTIO_NET_S_LINK_UP) ? 1 : 0);
	} else {
		mpops_port_link_set(p->port, 1);
	}
	atomic_store(&d->started, 1);
	return 0;
}

static int vtpci_dev_stop(struct vtnet_port *p)
{
	struct vtpci_dev *d = p->pci;

	atomic_store(&d->started, 0);
	/* A reset is the only way to take the queues back from a device. */
	device_reset(&d->acc);
	status_add(&d->acc, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	status_add(&d->acc, VIRTIO_CONFIG_S_DRIVER);
	if (pci_set_features(p, p->sh->features) < 0)
		vt_warn("vtnet %s: features not accepted again after the reset", p->sh->name);
	mpops_port_link_set(p->port, 0);
	return 0;
}

/* ==== per-process slot ================================================== */

static int vtpci_slot_attach(struct vtnet_port *p, struct vtnet_slot *s)
{
	struct vtnet_port_shared *sh = p->sh;
	int dev_fd = -1, rc;

	if (!(s->pci = calloc(1, sizeof(*s->pci))))
		return -ENOMEM;
	if (ps_of(p)->access == VTPCI_VFIO) {
		/* A copy of the primary's device fd (its own, duplicated, in the primary). */
		rc = mpops_port_fds_get(p->port, &dev_fd, 1);
		if (rc == 0) {
			/* (A failure of the request itself is logged by the port layer.) */
			vt_err("vtnet %s: the primary has no vfio device fd of %s to give: are both built from the same sources?",
			       sh->name, ps_of(p)->addr);
			rc = -EBADMSG;
		}
		if (rc < 0)
			goto fail;
	}
	if ((rc = access_open(ps_of(p), dev_fd, s->pci)) < 0) {
		vt_err("vtnet %s: this process cannot reach PCI device %s: %s", sh->name, ps_of(p)->addr,
		       strerror(-rc));
		goto fail;
	}
	return 0;
fail:
	free(s->pci);
	s->pci = NULL;
	return rc;
}

static int vtpci_slot_detach(struct vtnet_port *p, struct vtnet_slot *s)
{
	(void)p;
	if (s->pci) {
		access_close(s->pci);
		free(s->pci);
		s->pci = NULL;
	}
	return 0;
}

/* Creator: what other processes need: the vfio device fd (uio: nothing). */
static int vtpci_fds_export(struct vtnet_port *p, int *fds, int max)
{
	if (!p->pci || ps_of(p)->access != VTPCI_VFIO)
		return 0;
	if (max < 1)
		return -ENOSPC;
	fds[0] = p->pci->acc.dev_fd;
	return 1;
}

static const struct vtnet_tr_ops pci_tr = {
	.create = vtpci_dev_create,
	.destroy = vtpci_dev_destroy,
	.start = vtpci_dev_start,
	.stop = vtpci_dev_stop,
	.features_set = pci_set_features,
	.slot_attach = vtpci_slot_attach,
	.slot_detach = vtpci_slot_detach,
	.fds_export = vtpci_fds_export,
};
MPOPS_OPS_IMPL(vtnet_tr, pci, &pci_tr)
