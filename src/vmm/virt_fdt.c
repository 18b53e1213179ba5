/* SPDX-License-Identifier: MIT */
/*
 * virt_fdt.c - the virt machine's device tree, built with libfdt's
 * sequential writer, shaped like the one QEMU's virt machine generates so
 * that OpenSBI's generic platform and U-Boot's qemu-riscv64 find their
 * devices by the same compatible strings and phandle links.
 *
 * Phandles are fixed before writing (the writer cannot patch forward
 * references): hart h's interrupt controller is 1 + h, then the PLIC,
 * then the test device.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <libfdt.h>
#include "vmm/virt_dev.h"
#include "tandem/virt.h"

#define FDT_TRY(x)                              \
	do {                                    \
		int __r = (x);                  \
		if (__r < 0)                    \
			return fdt_errno(__r);  \
	} while (0)

static int fdt_errno(int r)
{
	return r == -FDT_ERR_NOSPACE ? -ENOSPC : -EINVAL;
}

static int prop_cells(void *fdt, const char *name, const uint32_t *cells, unsigned int n)
{
	fdt32_t be[64];

	if (n > 64)
		return -FDT_ERR_BADVALUE;
	for (unsigned int i = 0; i < n; i++)
		be[i] = cpu_to_fdt32(cells[i]);
	return fdt_property(fdt, name, be, (int)(n * sizeof(fdt32_t)));
}

/* reg = <addr-hi addr-lo size-hi size-lo> (#address-cells = #size-cells = 2) */
static int prop_reg(void *fdt, uint64_t addr, uint64_t size)
{
	uint32_t c[4] = { (uint32_t)(addr >> 32), (uint32_t)addr, (uint32_t)(size >> 32),
			  (uint32_t)size };

	return prop_cells(fdt, "reg", c, 4);
}

/* A string list: the strings with their NULs, in one property. */
static int prop_strings(void *fdt, const char *name, const char *const *s, unsigned int n)
{
	char buf[256];
	size_t len = 0;

	for (unsigned int i = 0; i < n; i++) {
		size_t l = strlen(s[i]) + 1;

		if (len + l > sizeof(buf))
			return -FDT_ERR_BADVALUE;
		memcpy(buf + len, s[i], l);
		len += l;
	}
	return fdt_property(fdt, name, buf, (int)len);
}

static int begin_node_at(void *fdt, const char *name, uint64_t addr)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%s@%llx", name, (unsigned long long)addr);
	return fdt_begin_node(fdt, buf);
}

/* interrupts-extended: <intc(h) irq_a [intc(h) irq_b]> for every hart. */
static int prop_ext_irqs(void *fdt, unsigned int nr_harts, uint32_t irq_a, uint32_t irq_b)
{
	uint32_t c[4 * 64];
	unsigned int n = 0;

	for (unsigned int h = 0; h < nr_harts && h < 64; h++) {
		c[n++] = 1 + h;
		c[n++] = irq_a;
		c[n++] = 1 + h;
		c[n++] = irq_b;
	}
	{
		fdt32_t be[4 * 64];

		for (unsigned int i = 0; i < n; i++)
			be[i] = cpu_to_fdt32(c[i]);
		return fdt_property(fdt, "interrupts-extended", be, (int)(n * sizeof(fdt32_t)));
	}
}

static int fdt_cpus(void *fdt, const struct virt_fdt_config *cfg)
{
	char name[32];

	FDT_TRY(fdt_begin_node(fdt, "cpus"));
	FDT_TRY(fdt_property_u32(fdt, "#address-cells", 1));
	FDT_TRY(fdt_property_u32(fdt, "#size-cells", 0));
	FDT_TRY(fdt_property_u32(fdt, "timebase-frequency", (uint32_t)VIRT_TIMEBASE_HZ));
	for (unsigned int h = 0; h < cfg->nr_harts; h++) {
		snprintf(name, sizeof(name), "cpu@%u", h);
		FDT_TRY(fdt_begin_node(fdt, name));
		FDT_TRY(fdt_property_u32(fdt, "phandle", 0x100 + h));
		FDT_TRY(fdt_property_string(fdt, "device_type", "cpu"));
		FDT_TRY(fdt_property_u32(fdt, "reg", h));
		FDT_TRY(fdt_property_string(fdt, "status", "okay"));
		FDT_TRY(fdt_property_string(fdt, "compatible", "riscv"));
		FDT_TRY(fdt_property_string(fdt, "riscv,isa", "rv64imac_zicsr_zifencei"));
		FDT_TRY(fdt_property_string(fdt, "mmu-type", "riscv,sv48"));
		FDT_TRY(fdt_begin_node(fdt, "interrupt-controller"));
		FDT_TRY(fdt_property_u32(fdt, "#interrupt-cells", 1));
		FDT_TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
		FDT_TRY(fdt_property_string(fdt, "compatible", "riscv,cpu-intc"));
		FDT_TRY(fdt_property_u32(fdt, "phandle", 1 + h));
		FDT_TRY(fdt_end_node(fdt));
		FDT_TRY(fdt_end_node(fdt));
	}
	FDT_TRY(fdt_begin_node(fdt, "cpu-map"));
	FDT_TRY(fdt_begin_node(fdt, "cluster0"));
	for (unsigned int h = 0; h < cfg->nr_harts; h++) {
		snprintf(name, sizeof(name), "core%u", h);
		FDT_TRY(fdt_begin_node(fdt, name));
		FDT_TRY(fdt_property_u32(fdt, "cpu", 0x100 + h));
		FDT_TRY(fdt_end_node(fdt));
	}
	FDT_TRY(fdt_end_node(fdt));
	FDT_TRY(fdt_end_node(fdt));
	FDT_TRY(fdt_end_node(fdt));
	return 0;
}

static int fdt_soc(void *fdt, const struct virt_fdt_config *cfg, uint32_t plic_ph,
		   uint32_t test_ph)
{
	static const char *const clint_compat[] = { "sifive,clint0", "riscv,clint0" };
	static const char *const plic_compat[] = { "sifive,plic-1.0.0", "riscv,plic0" };
	static const char *const test_compat[] = { "sifive,test1", "sifive,test0", "syscon" };

	FDT_TRY(fdt_begin_node(fdt, "soc"));
	FDT_TRY(fdt_property_u32(fdt, "#address-cells", 2));
	FDT_TRY(fdt_property_u32(fdt, "#size-cells", 2));
	FDT_TRY(fdt_property_string(fdt, "compatible", "simple-bus"));
	FDT_TRY(fdt_property(fdt, "ranges", NULL, 0));

	FDT_TRY(begin_node_at(fdt, "test", VIRT_TEST_BASE));
	FDT_TRY(fdt_property_u32(fdt, "phandle", test_ph));
	FDT_TRY(prop_reg(fdt, VIRT_TEST_BASE, VIRT_TEST_SIZE));
	FDT_TRY(prop_strings(fdt, "compatible", test_compat, 3));
	FDT_TRY(fdt_end_node(fdt));

	FDT_TRY(begin_node_at(fdt, "clint", VIRT_CLINT_BASE));
	FDT_TRY(prop_ext_irqs(fdt, cfg->nr_harts, 3, 7));
	FDT_TRY(prop_reg(fdt, VIRT_CLINT_BASE, VIRT_CLINT_SIZE));
	FDT_TRY(prop_strings(fdt, "compatible", clint_compat, 2));
	FDT_TRY(fdt_end_node(fdt));

	FDT_TRY(begin_node_at(fdt, "plic", VIRT_PLIC_BASE));
	FDT_TRY(fdt_property_u32(fdt, "phandle", plic_ph));
	FDT_TRY(fdt_property_u32(fdt, "riscv,ndev", PLIC_NDEV));
	FDT_TRY(prop_reg(fdt, VIRT_PLIC_BASE, VIRT_PLIC_SIZE));
	FDT_TRY(prop_ext_irqs(fdt, cfg->nr_harts, 11, 9));
	FDT_TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
	FDT_TRY(prop_strings(fdt, "compatible", plic_compat, 2));
	FDT_TRY(fdt_property_u32(fdt, "#address-cells", 0));
	FDT_TRY(fdt_property_u32(fdt, "#interrupt-cells", 1));
	FDT_TRY(fdt_end_node(fdt));

	FDT_TRY(begin_node_at(fdt, "serial", VIRT_UART_BASE));
	FDT_TRY(fdt_property_u32(fdt, "interrupts", VIRT_UART_IRQ));
	FDT_TRY(fdt_property_u32(fdt, "interrupt-parent", plic_ph));
	FDT_TRY(fdt_property_u32(fdt, "clock-frequency", VIRT_UART_CLOCK));
	FDT_TRY(prop_reg(fdt, VIRT_UART_BASE, VIRT_UART_SIZE));
	FDT_TRY(fdt_property_string(fdt, "compatible", "ns16550a"));
	FDT_TRY(fdt_end_node(fdt));

	/* QEMU lists the slots from the last to the first (the kernel probes
	 * in reverse order of the tree); the same here. */
	for (unsigned int i = cfg->nr_virtio; i-- > 0;) {
		uint64_t base = VIRT_VIRTIO_BASE + i * VIRT_VIRTIO_SIZE;

		FDT_TRY(begin_node_at(fdt, "virtio_mmio", base));
		FDT_TRY(fdt_property_u32(fdt, "interrupts", VIRT_VIRTIO_IRQ + i));
		FDT_TRY(fdt_property_u32(fdt, "interrupt-parent", plic_ph));
		FDT_TRY(prop_reg(fdt, base, VIRT_VIRTIO_SIZE));
		FDT_TRY(fdt_property_string(fdt, "compatible", "virtio,mmio"));
		FDT_TRY(fdt_end_node(fdt));
	}
	FDT_TRY(fdt_end_node(fdt));
	return 0;
}

int virt_fdt_build(const struct virt_fdt_config *cfg, void *buf, size_t size)
{
	uint32_t plic_ph = 1 + cfg->nr_harts, test_ph = plic_ph + 1;

	if (!cfg->nr_harts || cfg->nr_harts > 64 || size > INT32_MAX)
		return -EINVAL;
	FDT_TRY(fdt_create(buf, (int)size));
	FDT_TRY(fdt_finish_reservemap(buf));
	FDT_TRY(fdt_begin_node(buf, ""));
	FDT_TRY(fdt_property_u32(buf, "#address-cells", 2));
	FDT_TRY(fdt_property_u32(buf, "#size-cells", 2));
	FDT_TRY(fdt_property_string(buf, "compatible", "riscv-virtio"));
	FDT_TRY(fdt_property_string(buf, "model", "riscv-virtio,qemu"));

	FDT_TRY(fdt_begin_node(buf, "poweroff"));
	FDT_TRY(fdt_property_u32(buf, "value", 0x5555));
	FDT_TRY(fdt_property_u32(buf, "offset", 0));
	FDT_TRY(fdt_property_u32(buf, "regmap", test_ph));
	FDT_TRY(fdt_property_string(buf, "compatible", "syscon-poweroff"));
	FDT_TRY(fdt_end_node(buf));
	FDT_TRY(fdt_begin_node(buf, "reboot"));
	FDT_TRY(fdt_property_u32(buf, "value", 0x7777));
	FDT_TRY(fdt_property_u32(buf, "offset", 0));
	FDT_TRY(fdt_property_u32(buf, "regmap", test_ph));
	FDT_TRY(fdt_property_string(buf, "compatible", "syscon-reboot"));
	FDT_TRY(fdt_end_node(buf));

	/* Two CFI flash banks, as QEMU's virt has (pflash.c). */
	{
		uint32_t reg[8] = { 0, (uint32_t)VIRT_FLASH_BASE, 0, (uint32_t)VIRT_FLASH_BANK_SIZE,
				    0, (uint32_t)(VIRT_FLASH_BASE + VIRT_FLASH_BANK_SIZE), 0,
				    (uint32_t)VIRT_FLASH_BANK_SIZE };

		FDT_TRY(begin_node_at(buf, "flash", VIRT_FLASH_BASE));
		FDT_TRY(fdt_property_u32(buf, "bank-width", 4));
		FDT_TRY(prop_cells(buf, "reg", reg, 8));
		FDT_TRY(fdt_property_string(buf, "compatible", "cfi-flash"));
		FDT_TRY(fdt_end_node(buf));
	}

	FDT_TRY(begin_node_at(buf, "memory", cfg->ram_base));
	FDT_TRY(fdt_property_string(buf, "device_type", "memory"));
	FDT_TRY(prop_reg(buf, cfg->ram_base, cfg->ram_size));
	FDT_TRY(fdt_end_node(buf));

	FDT_TRY(fdt_cpus(buf, cfg));
	FDT_TRY(fdt_soc(buf, cfg, plic_ph, test_ph));

	FDT_TRY(fdt_begin_node(buf, "chosen"));
	FDT_TRY(fdt_property_string(buf, "stdout-path", "/soc/serial@10000000"));
	if (cfg->bootargs)
		FDT_TRY(fdt_property_string(buf, "bootargs", cfg->bootargs));
	FDT_TRY(fdt_end_node(buf));

	FDT_TRY(fdt_begin_node(buf, "config"));
	FDT_TRY(fdt_property_u32(buf, "bootdelay", (uint32_t)cfg->bootdelay));
	FDT_TRY(fdt_end_node(buf));

	FDT_TRY(fdt_end_node(buf));
	FDT_TRY(fdt_finish(buf));
	return (int)fdt_totalsize(buf);
}
