/** Public surface of the dev loop: `--sync` rules and the loop that follows them. */
export { type ChangeSet, diffSnapshots, type Snapshot, type SnapshotEntry, takeSnapshot } from './changes.js';
export { type Cycle, type DevLoop, type DevLoopOptions, startDevLoop } from './loop.js';
export { ON_CHANGE, type OnChange, resolveSyncRules, type SyncRule } from './rules.js';
