/* SPDX-License-Identifier: MIT */
/*
 * loader.c - firmware and kernel images into guest RAM: an ELF64
 * little-endian RISC-V executable by its PT_LOAD segments' physical
 * addresses (p_filesz bytes from the file, zeroes up to p_memsz), or a raw
 * image at a fixed address. Every byte goes in through vmm_write_guest
 * (the host mm), before the harts run.
 *
 * Checks, each with its own message: the file opens (errno), it is an
 * ELF64 LE RISC-V executable (-EINVAL), every segment and a raw image lie
 * in RAM (-E2BIG), and none overlaps a region already taken by another
 * image or the device tree (-EEXIST). Nothing is written before all the
 * checks have passed.
 *
 * HTIF: the symbols tohost and fromhost, if the image's symbol table has
 * them (bare-metal test programs).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vmm/virt_dev.h"

#ifndef EM_RISCV
#define EM_RISCV 243
#endif

static int load_err(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int load_err(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* The whole file into memory (limit: max bytes). */
static int read_file(const char *path, uint64_t max, uint8_t **out, uint64_t *len, char *err,
		     size_t errlen)
{
	struct stat st;
	uint8_t *buf;
	uint64_t done = 0;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		return load_err(err, errlen, -e, "%s: %s", path, strerror(e));
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return load_err(err, errlen, -EINVAL, "%s: not a regular file", path);
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return load_err(err, errlen, -E2BIG,
				"%s: %llu bytes, more than the %llu MiB of guest RAM", path,
				(unsigned long long)st.st_size, (unsigned long long)(max >> 20));
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return load_err(err, errlen, -ENOMEM, "%s: out of memory", path);
	}
	while (done < (uint64_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n <= 0) {
			e = n < 0 ? errno : EIO;
			free(buf);
			close(fd);
			return load_err(err, errlen, -e, "%s: read: %s", path, strerror(e));
		}
		done += (uint64_t)n;
	}
	close(fd);
	*out = buf;
	*len = done;
	return 0;
}

/* [lo, hi) against RAM and the taken regions. */
static int check_range(const char *path, uint64_t lo, uint64_t hi, uint64_t ram_base,
		       uint64_t ram_size, const struct virt_region *taken, unsigned int nr_taken,
		       char *err, size_t errlen)
{
	if (hi < lo || lo < ram_base || hi > ram_base + ram_size)
		return load_err(err, errlen, -E2BIG,
				"%s: [0x%llx, 0x%llx) is outside guest RAM [0x%llx, 0x%llx)", path,
				(unsigned long long)lo, (unsigned long long)hi,
				(unsigned long long)ram_base,
				(unsigned long long)(ram_base + ram_size));
	for (unsigned int i = 0; i < nr_taken; i++)
		if (lo < taken[i].hi && taken[i].lo < hi)
			return load_err(err, errlen, -EEXIST,
					"%s: [0x%llx, 0x%llx) overlaps %s at [0x%llx, 0x%llx)", path,
					(unsigned long long)lo, (unsigned long long)hi,
					taken[i].what, (unsigned long long)taken[i].lo,
					(unsigned long long)taken[i].hi);
	return 0;
}

static void find_htif(const uint8_t *f, uint64_t len, const Elf64_Ehdr *eh,
		      struct virt_image *img)
{
	const Elf64_Shdr *sh;
	bool to = false, from = false;

	if (!eh->e_shoff || eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    eh->e_shoff > len || (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > len - eh->e_shoff)
		return;
	sh = (const Elf64_Shdr *)(f + eh->e_shoff);
	for (unsigned int i = 0; i < eh->e_shnum; i++) {
		const Elf64_Shdr *str;
		const Elf64_Sym *sym;

		if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum ||
		    sh[i].sh_entsize != sizeof(Elf64_Sym) || sh[i].sh_offset > len ||
		    sh[i].sh_size > len - sh[i].sh_offset)
			continue;
		str = &sh[sh[i].sh_link];
		if (str->sh_offset > len || str->sh_size > len - str->sh_offset)
			continue;
		sym = (const Elf64_Sym *)(f + sh[i].sh_offset);
		for (uint64_t k = 0; k < sh[i].sh_size / sizeof(Elf64_Sym); k++) {
			const char *name;

			if (sym[k].st_name >= str->sh_size)
				continue;
			name = (const char *)f + str->sh_offset + sym[k].st_name;
			if (strnlen(name, str->sh_size - sym[k].st_name) ==
			    str->sh_size - sym[k].st_name)
				continue;
			if (!strcmp(name, "tohost")) {
				img->tohost = sym[k].st_value;
				to = true;
			} else if (!strcmp(name, "fromhost")) {
				img->fromhost = sym[k].st_value;
				from = true;
			}
		}
	}
	img->has_htif = to && from;
}

static int load_elf(struct vmm *vmm, const char *path, const uint8_t *f, uint64_t len,
		    uint64_t ram_base, uint64_t ram_size, const struct virt_region *taken,
		    unsigned int nr_taken, struct virt_image *img, char *err, size_t errlen)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
	const Elf64_Phdr *ph;
	unsigned int nr_load = 0;
	int ret;

	if (len < EI_NIDENT || eh->e_ident[EI_CLASS] != ELFCLASS64)
		return load_err(err, errlen, -EINVAL, "%s: not a 64-bit ELF file", path);
	if (len < sizeof(*eh) || eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return load_err(err, errlen, -EINVAL, "%s: not a little-endian ELF file", path);
	if (eh->e_machine != EM_RISCV)
		return load_err(err, errlen, -EINVAL,
				"%s: ELF for machine %u, not RISC-V (%u)", path, eh->e_machine,
				EM_RISCV);
	if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN)
		return load_err(err, errlen, -EINVAL, "%s: not an executable ELF file", path);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > len ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff)
		return load_err(err, errlen, -EINVAL, "%s: bad ELF program headers", path);
	ph = (const Elf64_Phdr *)(f + eh->e_phoff);

	/* Check every segment before writing any. */
	img->lo = UINT64_MAX;
	img->hi = 0;
	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD || !ph[i].p_memsz)
			continue;
		if (ph[i].p_filesz > ph[i].p_memsz || ph[i].p_offset > len ||
		    ph[i].p_filesz > len - ph[i].p_offset)
			return load_err(err, errlen, -EINVAL,
					"%s: segment %u lies outside the file", path, i);
		if (ph[i].p_paddr + ph[i].p_memsz < ph[i].p_paddr)
			return load_err(err, errlen, -E2BIG, "%s: segment %u wraps", path, i);
		ret = check_range(path, ph[i].p_paddr, ph[i].p_paddr + ph[i].p_memsz, ram_base,
				  ram_size, taken, nr_taken, err, errlen);
		if (ret)
			return ret;
		for (unsigned int j = 0; j < i; j++)
			if (ph[j].p_type == PT_LOAD && ph[j].p_memsz &&
			    ph[i].p_paddr < ph[j].p_paddr + ph[j].p_memsz &&
			    ph[j].p_paddr < ph[i].p_paddr + ph[i].p_memsz)
				return load_err(err, errlen, -EEXIST,
						"%s: segments %u and %u overlap", path, j, i);
		if (ph[i].p_paddr < img->lo)
			img->lo = ph[i].p_paddr;
		if (ph[i].p_paddr + ph[i].p_memsz > img->hi)
			img->hi = ph[i].p_paddr + ph[i].p_memsz;
		nr_load++;
	}
	if (!nr_load)
		return load_err(err, errlen, -EINVAL, "%s: no loadable segment", path);

	for (unsigned int i = 0; i < eh->e_phnum; i++) {
		static const uint8_t zero[4096];
		uint64_t addr, left;

		if (ph[i].p_type != PT_LOAD || !ph[i].p_memsz)
			continue;
		ret = vmm_write_guest(vmm, ph[i].p_paddr, f + ph[i].p_offset, ph[i].p_filesz);
		addr = ph[i].p_paddr + ph[i].p_filesz;
		left = ph[i].p_memsz - ph[i].p_filesz;
		while (!ret && left) {
			uint64_t n = left < sizeof(zero) ? left : sizeof(zero);

			ret = vmm_write_guest(vmm, addr, zero, n);
			addr += n;
			left -= n;
		}
		if (ret)
			return load_err(err, errlen, ret, "%s: writing guest RAM: %s", path,
					strerror(-ret));
	}
	img->elf = true;
	img->entry = eh->e_entry;
	find_htif(f, len, eh, img);
	return 0;
}

int virt_load_image(struct vmm *vmm, const char *path, uint64_t raw_addr, uint64_t ram_base,
		    uint64_t ram_size, const struct virt_region *taken, unsigned int nr_taken,
		    struct virt_image *img, char *err, size_t errlen)
{
	uint8_t *f = NULL;
	uint64_t len = 0;
	int ret;

	memset(img, 0, sizeof(*img));
	img->path = path;
	ret = read_file(path, ram_size, &f, &len, err, errlen);
	if (ret)
		return ret;
	if (len >= 4 && !memcmp(f, ELFMAG, SELFMAG)) {
		ret = load_elf(vmm, path, f, len, ram_base, ram_size, taken, nr_taken, img, err,
			       errlen);
	} else if (!len) {
		ret = load_err(err, errlen, -EINVAL, "%s: empty file", path);
	} else {
		ret = check_range(path, raw_addr, raw_addr + len, ram_base, ram_size, taken,
				  nr_taken, err, errlen);
		if (!ret) {
			ret = vmm_write_guest(vmm, raw_addr, f, len);
			if (ret)
				load_err(err, errlen, ret, "%s: writing guest RAM: %s", path,
					 strerror(-ret));
		}
		img->entry = raw_addr;
		img->lo = raw_addr;
		img->hi = raw_addr + len;
	}
	free(f);
	return ret;
}
