/* SPDX-License-Identifier: MIT */
/*
 * virtio_blk.c - a virtio-mmio transport, version 2 (virtio 1.x, "modern"
 * only: VIRTIO_F_VERSION_1 must be accepted), with a block device over a
 * file behind it, or nothing (device id 0: an empty slot, as QEMU's virt
 * has eight of).
 *
 * One split virtqueue (requestq). A notify processes every new avail
 * entry on the notifying thread: read the chain (header, data buffers,
 * status byte), do the I/O with pread/pwrite on the file, write the
 * status, put the head on the used ring, then raise bit 0 of
 * InterruptStatus (the PLIC line follows InterruptStatus != 0) unless
 * the driver asked for no interrupts. All ring and buffer accesses are
 * the VMM's own (vmm_read_guest / vmm_write_guest through the host mm),
 * so the guest's pages may be swapped out or COW-shared meanwhile.
 *
 * Ordering: the guest publishes avail.idx after the ring entry and the
 * descriptors (its write barrier); we read avail.idx, then a full
 * barrier (virtio_mb: a seq_cst read-modify-write, since TSan refuses
 * fences), then the entries. We write the used entry, a full barrier,
 * then used.idx, then raise the interrupt.
 *
 * Locking: d->lock serializes register accesses and queue processing
 * (several harts may touch the device).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vmm/virt_dev.h"

#define VIRTIO_MMIO_MAGIC_VALUE       0x000
#define VIRTIO_MMIO_VERSION           0x004
#define VIRTIO_MMIO_DEVICE_ID         0x008
#define VIRTIO_MMIO_VENDOR_ID         0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES   0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES   0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL         0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX     0x034
#define VIRTIO_MMIO_QUEUE_NUM         0x038
#define VIRTIO_MMIO_QUEUE_READY       0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY      0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS  0x060
#define VIRTIO_MMIO_INTERRUPT_ACK     0x064
#define VIRTIO_MMIO_STATUS            0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW    0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH   0x084
#define VIRTIO_MMIO_QUEUE_AVAIL_LOW   0x090
#define VIRTIO_MMIO_QUEUE_AVAIL_HIGH  0x094
#define VIRTIO_MMIO_QUEUE_USED_LOW    0x0a0
#define VIRTIO_MMIO_QUEUE_USED_HIGH   0x0a4
#define VIRTIO_MMIO_SHM_LEN_LOW       0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH      0x0b4
#define VIRTIO_MMIO_SHM_BASE_LOW      0x0b8
#define VIRTIO_MMIO_SHM_BASE_HIGH     0x0bc
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG            0x100

#define VIRTIO_F_VERSION_1     32
#define VIRTIO_BLK_F_RO        5
#define VIRTIO_BLK_F_BLK_SIZE  6
#define VIRTIO_BLK_F_FLUSH     9

#define VIRTIO_STATUS_FAILED   0x80
#define VIRTIO_STATUS_FEATURES_OK 0x08

#define VIRTQ_DESC_F_NEXT      1
#define VIRTQ_DESC_F_WRITE     2
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

#define VIRTIO_BLK_T_IN        0
#define VIRTIO_BLK_T_OUT       1
#define VIRTIO_BLK_T_FLUSH     4
#define VIRTIO_BLK_T_GET_ID    8
#define VIRTIO_BLK_S_OK        0
#define VIRTIO_BLK_S_IOERR     1
#define VIRTIO_BLK_S_UNSUPP    2
#define VIRTIO_BLK_ID_BYTES    20
#define SECTOR_SIZE            512

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct virtq_desc) == 16, "virtq_desc layout");

struct virtio_blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct virtio_mmio {
	struct vmm *vmm;
	pthread_mutex_t lock;
	int fd;
	bool read_only;
	uint64_t capacity;              /* sectors */
	uint32_t device_id;
	uint64_t host_features, guest_features;
	uint32_t host_sel, guest_sel;
	uint32_t status;
	uint32_t int_status;
	void (*irq_line)(void *arg, unsigned int src, bool level);
	void *irq_arg;
	unsigned int irq;
	bool line;
	uint32_t q_sel;
	/* queue 0 */
	uint32_t q_num;
	bool q_ready;
	uint64_t q_desc, q_avail, q_used;
	uint16_t last_avail;
	struct virtio_blk_stats stats;
	_Atomic uint64_t barrier;       /* virtio_mb's word */
};

/* A full barrier (a locked RMW on x86) that TSan accepts, unlike a fence. */
static inline void virtio_mb(struct virtio_mmio *d)
{
	atomic_fetch_add_explicit(&d->barrier, 0, memory_order_seq_cst);
}

int virtio_mmio_create(struct vmm *vmm, int fd, bool read_only,
		       void (*irq_line)(void *arg, unsigned int src, bool level), void *irq_arg,
		       unsigned int irq, struct virtio_mmio **out)
{
	struct virtio_mmio *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->vmm = vmm;
	d->fd = fd;
	d->read_only = read_only;
	d->irq_line = irq_line;
	d->irq_arg = irq_arg;
	d->irq = irq;
	if (fd >= 0) {
		struct stat st;

		if (fstat(fd, &st)) {
			int err = -errno;

			free(d);
			return err;
		}
		d->device_id = VIRTIO_ID_BLOCK;
		d->capacity = (uint64_t)st.st_size / SECTOR_SIZE;
		d->host_features = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_BLK_F_FLUSH |
				   1ULL << VIRTIO_BLK_F_BLK_SIZE;
		if (read_only)
			d->host_features |= 1ULL << VIRTIO_BLK_F_RO;
	}
	pthread_mutex_init(&d->lock, NULL);
	*out = d;
	return 0;
}

void virtio_mmio_destroy(struct virtio_mmio *d)
{
	if (!d)
		return;
	if (d->fd >= 0)
		close(d->fd);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void virtio_blk_get_stats(struct virtio_mmio *d, struct virtio_blk_stats *st)
{
	pthread_mutex_lock(&d->lock);
	*st = d->stats;
	pthread_mutex_unlock(&d->lock);
}

static void virtio_update_locked(struct virtio_mmio *d)
{
	bool level = d->int_status != 0;

	if (level != d->line) {
		d->line = level;
		if (d->irq_line)
			d->irq_line(d->irq_arg, d->irq, level);
	}
}

static void virtio_reset_locked(struct virtio_mmio *d)
{
	d->guest_features = 0;
	d->host_sel = d->guest_sel = d->q_sel = 0;
	d->status = 0;
	d->int_status = 0;
	d->q_num = 0;
	d->q_ready = false;
	d->q_desc = d->q_avail = d->q_used = 0;
	d->last_avail = 0;
	virtio_update_locked(d);
}

void virtio_mmio_reset(struct virtio_mmio *d)
{
	pthread_mutex_lock(&d->lock);
	virtio_reset_locked(d);
	pthread_mutex_unlock(&d->lock);
}

/* ---- requests ------------------------------------------------------------ */

/* Copy between the file at *pos and the guest buffer [addr, addr + len),
 * in chunks. Returns 0 or -EIO / -EFAULT. */
static int blk_rw(struct virtio_mmio *d, bool to_guest, uint64_t addr, uint32_t len,
		  uint64_t *pos)
{
	uint8_t buf[16384];

	while (len) {
		uint32_t n = len < sizeof(buf) ? len : (uint32_t)sizeof(buf);
		ssize_t r;

		if (to_guest) {
			r = pread(d->fd, buf, n, (off_t)*pos);
			if (r < 0)
				return -EIO;
			if ((uint32_t)r < n)
				memset(buf + r, 0, n - (uint32_t)r);
			if (vmm_write_guest(d->vmm, addr, buf, n))
				return -EFAULT;
		} else {
			if (vmm_read_guest(d->vmm, addr, buf, n))
				return -EFAULT;
			r = pwrite(d->fd, buf, n, (off_t)*pos);
			if (r != (ssize_t)n)
				return -EIO;
		}
		addr += n;
		len -= n;
		*pos += n;
	}
	return 0;
}

/*
 * One request: the chain from head. Returns the bytes written into the
 * guest's buffers (the used length), or -1 if the chain is malformed (the
 * device then marks itself failed: virtio's DEVICE_NEEDS_RESET is the
 * nicer answer; a broken driver gets no more service either way).
 */
static int64_t blk_request_locked(struct virtio_mmio *d, uint16_t head)
{
	struct virtq_desc desc[VIRTQ_MAX_SIZE];
	struct virtio_blk_req_hdr hdr;
	unsigned int n = 0;
	uint16_t i = head;
	uint64_t pos, written = 0;
	uint8_t status = VIRTIO_BLK_S_OK;
	int err = 0;

	/* Gather the chain (bounded by the queue size: a loop is an error). */
	for (;;) {
		if (i >= d->q_num || n == d->q_num)
			return -1;
		if (vmm_read_guest(d->vmm, d->q_desc + (uint64_t)i * 16, &desc[n], 16))
			return -1;
		if (!(desc[n].flags & VIRTQ_DESC_F_NEXT)) {
			n++;
			break;
		}
		i = desc[n++].next;
	}
	if (n < 2 || desc[0].len < sizeof(hdr) || (desc[0].flags & VIRTQ_DESC_F_WRITE) ||
	    !(desc[n - 1].flags & VIRTQ_DESC_F_WRITE) || desc[n - 1].len < 1)
		return -1;
	if (vmm_read_guest(d->vmm, desc[0].addr, &hdr, sizeof(hdr)))
		return -1;
	pos = hdr.sector * SECTOR_SIZE;

	switch (hdr.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool in = hdr.type == VIRTIO_BLK_T_IN;
		uint64_t total = 0;

		for (unsigned int k = 1; k < n - 1; k++) {
			if (!!(desc[k].flags & VIRTQ_DESC_F_WRITE) != in)
				return -1;
			total += desc[k].len;
		}
		if (hdr.sector > d->capacity || total > (d->capacity - hdr.sector) * SECTOR_SIZE ||
		    (!in && d->read_only)) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		for (unsigned int k = 1; k < n - 1 && !err; k++) {
			err = blk_rw(d, in, desc[k].addr, desc[k].len, &pos);
			if (in && !err)
				written += desc[k].len;
		}
		if (err)
			status = VIRTIO_BLK_S_IOERR;
		if (in)
			d->stats.reads++;
		else
			d->stats.writes++;
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		d->stats.flushes++;
		if (fdatasync(d->fd) && errno != EINVAL && errno != EROFS)
			status = VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		char id[VIRTIO_BLK_ID_BYTES] = "tandem-virtio-blk";
		uint32_t len = n > 2 && desc[1].len < sizeof(id) ? desc[1].len : (uint32_t)sizeof(id);

		d->stats.get_ids++;
		if (n < 3 || !(desc[1].flags & VIRTQ_DESC_F_WRITE) ||
		    vmm_write_guest(d->vmm, desc[1].addr, id, len)) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		written += len;
		break;
	}
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (status != VIRTIO_BLK_S_OK)
		d->stats.errors++;
	/* The status byte: the last byte of the last descriptor. */
	if (vmm_write_guest(d->vmm, desc[n - 1].addr + desc[n - 1].len - 1, &status, 1))
		return -1;
	return (int64_t)written + 1;
}

static void virtio_notify_locked(struct virtio_mmio *d)
{
	uint16_t avail_idx, used_idx, flags;
	bool any = false;

	d->stats.notifies++;
	if (!d->q_ready || !d->q_num || d->device_id != VIRTIO_ID_BLOCK ||
	    (d->status & VIRTIO_STATUS_FAILED))
		return;
	if (vmm_read_guest(d->vmm, d->q_avail + 2, &avail_idx, 2) ||
	    vmm_read_guest(d->vmm, d->q_used + 2, &used_idx, 2))
		goto fail;
	virtio_mb(d);  /* pairs with the driver's barrier before avail.idx */
	if ((uint16_t)(avail_idx - d->last_avail) > d->q_num)
		goto fail;
	while (d->last_avail != avail_idx) {
		uint16_t head;
		uint32_t elem[2];
		int64_t len;

		if (vmm_read_guest(d->vmm, d->q_avail + 4 + 2ULL * (d->last_avail % d->q_num),
				   &head, 2))
			goto fail;
		len = blk_request_locked(d, head);
		if (len < 0)
			goto fail;
		elem[0] = head;
		elem[1] = (uint32_t)len;
		if (vmm_write_guest(d->vmm, d->q_used + 4 + 8ULL * (used_idx % d->q_num), elem, 8))
			goto fail;
		used_idx++;
		d->last_avail++;
		virtio_mb(d);  /* the used entry before used.idx */
		if (vmm_write_guest(d->vmm, d->q_used + 2, &used_idx, 2))
			goto fail;
		any = true;
	}
	virtio_mb(d);  /* used.idx before reading avail.flags */
	if (vmm_read_guest(d->vmm, d->q_avail, &flags, 2))
		goto fail;
	if (any && !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT)) {
		d->int_status |= 1;
		virtio_update_locked(d);
	}
	return;
fail:
	d->status |= VIRTIO_STATUS_FAILED;
	d->stats.errors++;
}

/* ---- registers ----------------------------------------------------------- */

static uint32_t virtio_config_read(struct virtio_mmio *d, uint64_t off)
{
	/* struct virtio_blk_config: capacity (u64) at 0, blk_size (u32) at 20. */
	if (d->device_id != VIRTIO_ID_BLOCK)
		return 0;
	if (off == 0)
		return (uint32_t)d->capacity;
	if (off == 4)
		return (uint32_t)(d->capacity >> 32);
	if (off == 20)
		return SECTOR_SIZE;
	return 0;
}

static uint32_t virtio_read_locked(struct virtio_mmio *d, uint64_t off)
{
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return d->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_VENDOR_QEMU;
	}
	if (d->device_id == 0)
		return 0;
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return d->host_sel < 2 ? (uint32_t)(d->host_features >> (32 * d->host_sel)) : 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return d->q_sel == 0 ? VIRTQ_MAX_SIZE : 0;
	case VIRTIO_MMIO_QUEUE_NUM:
		return d->q_sel == 0 ? d->q_num : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return d->q_sel == 0 && d->q_ready;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return d->int_status;
	case VIRTIO_MMIO_STATUS:
		return d->status;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
		return ~0u;     /* no shared memory region */
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return 0;
	}
	return 0;
}

static void set_lo(uint64_t *r, uint32_t v)
{
	*r = (*r & ~0xffffffffULL) | v;
}

static void set_hi(uint64_t *r, uint32_t v)
{
	*r = (*r & 0xffffffffULL) | (uint64_t)v << 32;
}

static void virtio_write_locked(struct virtio_mmio *d, uint64_t off, uint32_t v)
{
	/* Queue registers only while the queue is not live (virtio 4.2.2.2). */
	bool q_ok = d->q_sel == 0 && !d->q_ready;

	if (d->device_id == 0)
		return;
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		d->host_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (d->guest_sel < 2 && !(d->status & VIRTIO_STATUS_FEATURES_OK)) {
			uint64_t mask = 0xffffffffULL << (32 * d->guest_sel);

			d->guest_features = (d->guest_features & ~mask) |
					    (((uint64_t)v << (32 * d->guest_sel)) & mask &
					     d->host_features);
		}
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		d->guest_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		d->q_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		/* A split queue's size is a power of 2 up to the maximum. */
		if (q_ok && v && v <= VIRTQ_MAX_SIZE && !(v & (v - 1)))
			d->q_num = v;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (d->q_sel == 0) {
			d->q_ready = v & 1;
			if (!d->q_ready)
				d->last_avail = 0;
		}
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		if (v == 0)
			virtio_notify_locked(d);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		d->int_status &= ~v;
		virtio_update_locked(d);
		break;
	case VIRTIO_MMIO_STATUS:
		if (v == 0) {
			virtio_reset_locked(d);
			break;
		}
		/* A modern-only device: FEATURES_OK without VERSION_1 is refused
		 * (the driver reads the bit back clear). */
		if ((v & VIRTIO_STATUS_FEATURES_OK) &&
		    !(d->guest_features & 1ULL << VIRTIO_F_VERSION_1))
			v &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
		d->status = v;
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		if (q_ok)
			set_lo(&d->q_desc, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (q_ok)
			set_hi(&d->q_desc, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
		if (q_ok)
			set_lo(&d->q_avail, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if (q_ok)
			set_hi(&d->q_avail, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
		if (q_ok)
			set_lo(&d->q_used, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (q_ok)
			set_hi(&d->q_used, v);
		break;
	default:
		break;
	}
}

void virtio_mmio(void *opaque, struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
		 uint64_t *val)
{
	struct virtio_mmio *d = opaque;
	uint64_t off = (gpa - VIRT_VIRTIO_BASE) % VIRT_VIRTIO_SIZE;

	pthread_mutex_lock(&d->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		/* Config space: any size, little-endian bytes. */
		uint64_t c = off - VIRTIO_MMIO_CONFIG, v = 0;

		if (!write) {
			for (unsigned int i = 0; i < size; i++) {
				uint64_t b = c + i;

				v |= (uint64_t)((virtio_config_read(d, b & ~3ULL) >> (8 * (b & 3))) &
						0xff) << (8 * i);
			}
			*val = v;
		}
	} else if (size == 4) {
		if (write)
			virtio_write_locked(d, off, (uint32_t)*val);
		else
			*val = virtio_read_locked(d, off);
	} else if (!write) {
		*val = 0;       /* the registers are 32-bit */
	}
	pthread_mutex_unlock(&d->lock);
}
