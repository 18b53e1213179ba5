# tandem - build, test, run.
#
#   make            release library + the tandem binary (build/release/tandem)
#   make run        the default scenario (tandem run: 2 VMs x 2 vCPUs under churn)
#   make test       installs missing Debian packages, then builds and runs the
#                   suites in three variants: debug, ASan+UBSan, TSan
#   make bench      tandem bench (builds the RISC-V guests it runs: make bench-guests)
#
# Every variant is built from the same sources into build/<variant>/.

CC      ?= cc
VERSION := 0.2.0
Q       ?= @   # make Q= for full command lines
VARIANTS := release debug asan tsan
PKGS    := liburcu-memb cmocka

CFLAGS_COMMON := -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wshadow -Wstrict-prototypes -Wmissing-prototypes -pthread \
	-Iinclude -Isrc -D_GNU_SOURCE
CFLAGS_release := -O2 -g
CFLAGS_debug   := -O1 -g -DTANDEM_DEBUG -fno-omit-frame-pointer
CFLAGS_asan    := -O1 -g -DTANDEM_DEBUG -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined
CFLAGS_tsan    := -O1 -g -DTANDEM_DEBUG -fno-omit-frame-pointer -fsanitize=thread
LDLIBS  := -lurcu-memb -lurcu-common -lfdt -lpthread -lm
TEST_LDLIBS := -lcmocka

# The library's layers, bottom to top (DESIGN.md; scripts/check-layers.sh).
LAYERS     := base host kvm cpu vmm workload
LIB_SRCS   := $(sort $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c src/$(l)/*/*.c)))
CLI_SRCS   := $(sort $(wildcard src/cli/*.c bench/*.c))
# Tests: tests/<layer>/test_*.c and tests/stress/stress_*.c, one binary each,
# linked with the shared fixtures of tests/harness/ (an archive: a binary
# takes only the fixtures it uses). A test still at the top (tests/test_*.c,
# from a branch older than the layout) is built and run too, not lost.
TEST_SRCS  := $(sort $(wildcard tests/test_*.c tests/*/test_*.c tests/stress/stress_*.c))
TEST_HDRS  := $(wildcard tests/harness/*.h)
HARNESS_SRCS := $(sort $(wildcard tests/harness/*.c))
HDRS       := $(wildcard include/tandem/*.h src/*/*.h src/*/*/*.h bench/*.h)

# Per-variant object/binary lists.
define variant_rules
OBJS_$(1) := $$(patsubst %.c,build/$(1)/%.o,$$(LIB_SRCS))
build/$(1)/%.o: %.c $$(HDRS) | deps
	@mkdir -p $$(dir $$@)
	@echo "  CC [$(1)] $$<"
	$$(Q)$$(CC) $$(CFLAGS_COMMON) $$(CFLAGS_$(1)) -c $$< -o $$@
build/$(1)/libtandem.a: $$(OBJS_$(1))
	@rm -f $$@
	$$(Q)ar rcs $$@ $$^
build/$(1)/tandem: $$(patsubst %.c,build/$(1)/%.o,$$(CLI_SRCS)) build/$(1)/libtandem.a
	@echo "  LD [$(1)] $$@"
	$$(Q)$$(CC) $$(CFLAGS_COMMON) $$(CFLAGS_$(1)) -o $$@ $$^ $$(LDLIBS)
TESTS_$(1) := $$(patsubst %.c,build/$(1)/%,$$(TEST_SRCS))
HARNESS_$(1) := build/$(1)/tests/harness/libharness.a
build/$(1)/tests/harness/%.o: tests/harness/%.c $$(HDRS) $$(TEST_HDRS) | deps
	@mkdir -p $$(dir $$@)
	@echo "  CC [$(1)] $$<"
	$$(Q)$$(CC) $$(CFLAGS_COMMON) $$(CFLAGS_$(1)) -Itests -c $$< -o $$@
$$(HARNESS_$(1)): $$(patsubst %.c,build/$(1)/%.o,$$(HARNESS_SRCS))
	@rm -f $$@
	$$(Q)ar rcs $$@ $$^
build/$(1)/tests/%: tests/%.c $$(HARNESS_$(1)) build/$(1)/libtandem.a $$(HDRS) $$(TEST_HDRS)
	@mkdir -p $$(dir $$@)
	@echo "  LD [$(1)] $$@"
	$$(Q)$$(CC) $$(CFLAGS_COMMON) $$(CFLAGS_$(1)) -Itests -o $$@ $$< $$(HARNESS_$(1)) \
		build/$(1)/libtandem.a $$(TEST_LDLIBS) $$(LDLIBS)
# The suites and what they run: the variant's tandem binary (test_cli_errors)
# and the guest kernel (the RISC-V scenarios); scripts/mutate.sh builds this.
.PHONY: tests-build-$(1)
tests-build-$(1): deps $$(TESTS_$(1)) build/$(1)/tandem guest-kernel
endef
$(foreach v,$(VARIANTS),$(eval $(call variant_rules,$(v))))

# make install [PREFIX=/usr/local] [DESTDIR=]: the release library, the
# public headers and a pkg-config file (tandem.pc). The library is static;
# tandem.pc's Libs carry what it links against.
PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR   = $(PREFIX)/lib
INCDIR   = $(PREFIX)/include
PC_LIBS := -ltandem $(LDLIBS)

install: build/release/libtandem.a
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)/tandem
	install -m 644 build/release/libtandem.a $(DESTDIR)$(LIBDIR)/
	install -m 644 include/tandem/*.h $(DESTDIR)$(INCDIR)/tandem/
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' \
		'includedir=$${prefix}/include' '' 'Name: tandem' \
		'Description: hypervisor memory system: host MMU, MMU notifiers, KVM-style secondary MMU' \
		'Version: $(VERSION)' 'Cflags: -I$${includedir} -pthread' \
		'Libs: -L$${libdir} $(PC_LIBS)' >$(DESTDIR)$(LIBDIR)/pkgconfig/tandem.pc

# The example programs, built only against an installed tree (a staging
# install under build/stage) with pkg-config, as a user would build them.
STAGE := $(CURDIR)/build/stage
EXAMPLES := $(patsubst examples/%.c,build/examples/%,$(wildcard examples/*.c))
build/examples/%: examples/%.c build/release/libtandem.a $(HDRS) Makefile
	@$(MAKE) --no-print-directory install DESTDIR=$(STAGE) PREFIX=/usr >/dev/null
	@mkdir -p $(dir $@)
	@echo "  LD [example] $@"
	$(Q)PKG_CONFIG_SYSROOT_DIR=$(STAGE) PKG_CONFIG_LIBDIR=$(STAGE)/usr/lib/pkgconfig \
		$(CC) -Wall -Wextra -Werror -o $@ $< \
		$$(PKG_CONFIG_SYSROOT_DIR=$(STAGE) PKG_CONFIG_LIBDIR=$(STAGE)/usr/lib/pkgconfig \
		   pkg-config --cflags --libs tandem)
examples: $(EXAMPLES)

.PHONY: all run test bench deps tests-build clean install examples
all: deps build/release/tandem

deps:
	@scripts/deps.sh

run: all
	./build/release/tandem run

bench: all bench-guests
	./build/release/tandem bench

# The guest programs of `tandem bench riscv` (guests/bench), built with
# Debian's riscv64-unknown-elf-gcc into build/bench-guests.
.PHONY: bench-guests
bench-guests: deps
	@$(MAKE) --no-print-directory -C guests/bench O=$(CURDIR)/build/bench-guests >/dev/null
# The RISC-V benchmarks divide by the instruction counts the guests' header holds.
$(foreach v,$(VARIANTS),build/$(v)/bench/bench_riscv.o build/$(v)/bench/bench_gva.o \
	build/$(v)/bench/bench_rv.o): guests/bench/bench_guests.h
# The U-Boot console dialogue (tests/boot/uboot_dialogue.c): a plain program
# that drives `tandem boot`; scripts/run-tests.sh runs it on the debug tandem.
UBOOT_DIALOGUE := build/debug/tests/boot/uboot_dialogue
$(UBOOT_DIALOGUE): tests/boot/uboot_dialogue.c
	@mkdir -p $(dir $@)
	@echo "  LD [debug] $@"
	$(Q)$(CC) $(CFLAGS_COMMON) $(CFLAGS_debug) -o $@ $<

tests-build: deps $(TESTS_debug) $(TESTS_asan) $(TESTS_tsan) build/release/tandem $(EXAMPLES) \
	build/debug/tandem build/asan/tandem build/tsan/tandem rv-tests guest-kernel \
	$(UBOOT_DIALOGUE)

# The project's own S-mode kernel (guests/kernel), the guest of issue 9's
# GVA tables; scripts/guest-kernel.sh boots it under OpenSBI.
.PHONY: guest-kernel
guest-kernel: deps
	@$(MAKE) --no-print-directory -C guests/kernel O=$(CURDIR)/build/kernel >/dev/null

# The project's own RISC-V test programs (guests/rv-tests), built with
# Debian's riscv64-unknown-elf-gcc; scripts/rv-tests.sh runs them.
.PHONY: rv-tests
rv-tests: deps
	@$(MAKE) --no-print-directory -C guests/rv-tests O=$(CURDIR)/build/rv-tests >/dev/null

test: tests-build
	@scripts/run-tests.sh debug asan tsan

check-%: deps
	@$(MAKE) --no-print-directory $(TESTS_$*)
	@scripts/run-tests.sh $*

clean:
	rm -rf build
