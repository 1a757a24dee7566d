import type { Command } from 'commander';

export function registerOcspCommands(_program: Command, _serve: Command): void {}
