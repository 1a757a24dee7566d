import type { Command } from 'commander';

export function registerAkaCommands(_program: Command): void {}
