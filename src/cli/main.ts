#!/usr/bin/env node
import { Command } from 'commander';

const program = new Command('devbox')
  .description('Run a Kubernetes workload in a local Docker container with the pod\'s DNS, env, volumes and traffic.')
  .version('0.1.0');

await program.parseAsync(process.argv);
