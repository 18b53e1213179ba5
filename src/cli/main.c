/* SPDX-License-Identifier: MIT */
/*
 * main.c - the tandem command: `tandem <command> [options]`.
 *
 * Commands live in one table; each parses its own options with getopt_long
 * (argv[0] is the command's name) and returns the process exit status
 * (cli.h: 0 ok, 1 failed, 2 usage). A new command is one more row.
 */
#include <stdio.h>
#include <string.h>
#include "cli/cli.h"

struct command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
	void (*usage)(FILE *f);
};

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const struct command commands[] = {
	{ "run", "VMs run checking workloads while the host churns their memory",
	  cmd_run, run_usage },
	{ "host-demo", "exercise the primary MMU from several threads and verify it",
	  cmd_host_demo, host_demo_usage },
	{ "boot", "boot a RISC-V VM on a QEMU-virt-like machine (OpenSBI, U-Boot)",
	  cmd_boot, boot_usage },
	{ "bench", "micro-benchmarks beside native baselines (tandem bench host)",
	  cmd_bench, bench_usage },
	{ "help", "this text, or a command's options (tandem help <command>)",
	  cmd_help, NULL },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tandem <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n  --help     this text\n  --version  print the version\n"
		   "\n'tandem <command> --help' lists a command's options.\n"
		   "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static int cmd_help(int argc, char **argv)
{
	const struct command *cmd;

	if (argc < 2) {
		usage(stdout);
		return 0;
	}
	if (argc > 2) {
		fprintf(stderr, "tandem help: too many arguments\n");
		return EXIT_USAGE;
	}
	cmd = find_command(argv[1]);
	if (!cmd) {
		fprintf(stderr, "tandem help: unknown command '%s'\n", argv[1]);
		return EXIT_USAGE;
	}
	if (cmd->usage)
		cmd->usage(stdout);
	else
		usage(stdout);
	return 0;
}

static int cmd_version(int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "tandem: --version takes no arguments\n");
		return EXIT_USAGE;
	}
	printf("tandem %s\n", TANDEM_VERSION);
	return 0;
}

int main(int argc, char **argv)
{
	const struct command *cmd;
	const char *name;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
		return cmd_help(argc - 1, argv + 1);
	if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
		return cmd_version(argc - 1, argv + 1);
	cmd = find_command(name);
	if (!cmd) {
		if (name[0] == '-')
			fprintf(stderr, "tandem: unknown option '%s'\n", name);
		else
			fprintf(stderr, "tandem: unknown command '%s'\n", name);
		fprintf(stderr, "try 'tandem --help'\n");
		return EXIT_USAGE;
	}
	return cmd->run(argc - 1, argv + 1);
}
