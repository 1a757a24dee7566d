import type { Command } from 'commander';

export function registerPkiCommands(_program: Command): void {}
