/* SPDX-License-Identifier: MIT */
/*
 * pflash.c - the virt machine's parallel NOR flash: two 32 MiB banks at
 * 0x2000_0000 that answer the CFI query and the Intel/Sharp command set
 * (0x0001), as QEMU's virt machine has (pflash_cfi01, bank width 4, 256
 * KiB blocks). Firmware probes it: U-Boot's CFI driver finds the banks
 * through the device tree's "cfi-flash" node, and without them its flash
 * bookkeeping takes every address for flash (its `cp` then refuses RAM).
 *
 * The device is one x32 chip per bank: a command is the low byte of any
 * write; query and ID data sit at (offset / 4), in the low byte of each
 * 32-bit word. Supported: read array (0xff, 0xf0), read ID (0x90), CFI
 * query (0x98), read / clear status (0x70, 0x50), word program (0x40,
 * 0x10), block erase (0x20 + 0xd0), and block lock commands (0x60 + x,
 * accepted; nothing is ever locked). No buffered writes: the query says
 * a buffer of one word. Programming only clears bits, as on NOR flash.
 *
 * Contents start erased (0xff) and are kept per 256 KiB block, allocated
 * on the first program: an untouched bank costs no memory. Nothing is
 * saved to a file (QEMU's -pflash is not modelled).
 *
 * Locking: one mutex per device; accesses come from any hart's thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "vmm/virt_dev.h"

#define PFLASH_BLOCK      (256u << 10)
#define PFLASH_NR_BLOCKS  (VIRT_FLASH_BANK_SIZE / PFLASH_BLOCK)
#define PFLASH_WIDTH      4

enum pflash_mode {
	PF_READ_ARRAY,
	PF_READ_ID,
	PF_QUERY,
	PF_STATUS,
	PF_PROGRAM,             /* the next write is the data */
	PF_ERASE,               /* the next write must be 0xd0 */
	PF_LOCK,                /* the next write ends a lock command */
};

#define PF_STATUS_READY 0x80

struct pflash_bank {
	uint8_t *block[PFLASH_NR_BLOCKS];       /* NULL: erased */
	enum pflash_mode mode;
	uint8_t status;
};

struct pflash {
	pthread_mutex_t lock;
	struct pflash_bank bank[VIRT_FLASH_BANKS];
	uint64_t programs, erases;
};

/* The CFI query table (JESD68), one byte per x32 word. */
static uint8_t cfi_byte(unsigned int i)
{
	static const uint8_t t[] = {
		[0x10] = 'Q', [0x11] = 'R', [0x12] = 'Y',
		[0x13] = 0x01, [0x14] = 0x00,   /* primary command set: Intel/Sharp */
		[0x15] = 0x31, [0x16] = 0x00,   /* its extended table */
		[0x1b] = 0x45, [0x1c] = 0x55,   /* Vcc 4.5 .. 5.5 V */
		[0x1f] = 0x06,                  /* typical word program: 2^6 us */
		[0x21] = 0x0a,                  /* typical block erase: 2^10 ms */
		[0x23] = 0x04, [0x25] = 0x04,   /* maxima: 2^4 times typical */
		[0x27] = 25,                    /* 2^25 bytes = 32 MiB */
		[0x28] = 0x02,                  /* x8 / x16 async interface code */
		[0x2a] = 0x00,                  /* write buffer: 2^0 bytes (none) */
		[0x2c] = 0x01,                  /* one erase-block region: */
		[0x2d] = (PFLASH_NR_BLOCKS - 1) & 0xff, [0x2e] = (PFLASH_NR_BLOCKS - 1) >> 8,
		[0x2f] = (PFLASH_BLOCK / 256) & 0xff, [0x30] = (PFLASH_BLOCK / 256) >> 8,
		[0x31] = 'P', [0x32] = 'R', [0x33] = 'I', [0x34] = '1', [0x35] = '0',
	};

	return i < sizeof(t) ? t[i] : 0;
}

int pflash_create(struct pflash **out)
{
	struct pflash *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	for (unsigned int b = 0; b < VIRT_FLASH_BANKS; b++)
		f->bank[b].status = PF_STATUS_READY;
	*out = f;
	return 0;
}

void pflash_destroy(struct pflash *f)
{
	if (!f)
		return;
	for (unsigned int b = 0; b < VIRT_FLASH_BANKS; b++)
		for (unsigned int i = 0; i < PFLASH_NR_BLOCKS; i++)
			free(f->bank[b].block[i]);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void pflash_reset(struct pflash *f)
{
	pthread_mutex_lock(&f->lock);
	for (unsigned int b = 0; b < VIRT_FLASH_BANKS; b++) {
		f->bank[b].mode = PF_READ_ARRAY;
		f->bank[b].status = PF_STATUS_READY;
	}
	pthread_mutex_unlock(&f->lock);
}

static uint8_t array_byte(const struct pflash_bank *bk, uint64_t off)
{
	const uint8_t *blk = bk->block[off / PFLASH_BLOCK];

	return blk ? blk[off % PFLASH_BLOCK] : 0xff;
}

/* Program (AND in) size bytes of val at off; -ENOMEM leaves them erased. */
static int array_program(struct pflash_bank *bk, uint64_t off, unsigned int size, uint64_t val)
{
	for (unsigned int i = 0; i < size; i++, off++) {
		uint8_t **blk = &bk->block[off / PFLASH_BLOCK];

		if (!*blk) {
			*blk = malloc(PFLASH_BLOCK);
			if (!*blk)
				return -ENOMEM;
			memset(*blk, 0xff, PFLASH_BLOCK);
		}
		(*blk)[off % PFLASH_BLOCK] &= (uint8_t)(val >> (8 * i));
	}
	return 0;
}

/* A read of size bytes at off in the current mode. */
static uint64_t bank_read(const struct pflash_bank *bk, uint64_t off, unsigned int size)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < size; i++) {
		uint64_t o = off + i;
		uint8_t byte;

		switch (bk->mode) {
		case PF_READ_ARRAY:
			byte = array_byte(bk, o);
			break;
		case PF_QUERY:
			byte = o % PFLASH_WIDTH ? 0 : cfi_byte((unsigned int)(o / PFLASH_WIDTH));
			break;
		case PF_READ_ID: {
			/* word 0: manufacturer (Intel), 1: device, and at word 2
			 * of every block its lock state (0: unlocked). */
			uint64_t w = (o % PFLASH_BLOCK) / PFLASH_WIDTH;

			byte = o % PFLASH_WIDTH ? 0 : w == 0 ? 0x89 : w == 1 ? 0x18 : 0;
			break;
		}
		default:        /* status, and the setup states */
			byte = o % PFLASH_WIDTH ? 0 : bk->status;
			break;
		}
		v |= (uint64_t)byte << (8 * i);
	}
	return v;
}

static void bank_write(struct pflash *f, struct pflash_bank *bk, uint64_t off,
		       unsigned int size, uint64_t val)
{
	uint8_t cmd = (uint8_t)val;

	switch (bk->mode) {
	case PF_PROGRAM:
		if (array_program(bk, off, size, val))
			bk->status |= 0x10;     /* program error */
		else
			f->programs++;
		bk->mode = PF_STATUS;
		return;
	case PF_ERASE:
		if (cmd == 0xd0) {
			uint8_t **blk = &bk->block[off / PFLASH_BLOCK];

			free(*blk);
			*blk = NULL;
			f->erases++;
			bk->mode = PF_STATUS;
		} else {
			bk->status |= 0x30;     /* command sequence error */
			bk->mode = PF_STATUS;
		}
		return;
	case PF_LOCK:
		bk->mode = PF_STATUS;           /* accepted; nothing is locked */
		return;
	default:
		break;
	}
	switch (cmd) {
	case 0xff:
	case 0xf0:
	case 0x00:
		bk->mode = PF_READ_ARRAY;
		break;
	case 0x90:
		bk->mode = PF_READ_ID;
		break;
	case 0x98:
		bk->mode = PF_QUERY;
		break;
	case 0x70:
		bk->mode = PF_STATUS;
		break;
	case 0x50:
		bk->status = PF_STATUS_READY;
		break;
	case 0x40:
	case 0x10:
		bk->mode = PF_PROGRAM;
		break;
	case 0x20:
		bk->mode = PF_ERASE;
		break;
	case 0x60:
		bk->mode = PF_LOCK;
		break;
	default:
		bk->status |= 0x30;             /* unknown command: sequence error */
		bk->mode = PF_STATUS;
		break;
	}
}

void pflash_mmio(void *opaque, struct vcpu *vcpu, gpa_t gpa, unsigned int size, bool write,
		 uint64_t *val)
{
	struct pflash *f = opaque;
	uint64_t off = gpa - VIRT_FLASH_BASE;
	struct pflash_bank *bk = &f->bank[off / VIRT_FLASH_BANK_SIZE];

	off %= VIRT_FLASH_BANK_SIZE;
	pthread_mutex_lock(&f->lock);
	if (write)
		bank_write(f, bk, off, size, *val);
	else
		*val = bank_read(bk, off, size);
	pthread_mutex_unlock(&f->lock);
}

void pflash_get_stats(struct pflash *f, uint64_t *programs, uint64_t *erases)
{
	pthread_mutex_lock(&f->lock);
	*programs = f->programs;
	*erases = f->erases;
	pthread_mutex_unlock(&f->lock);
}
