/** Public surface of the project file: `devbox.yaml` and the per-workload settings of `up`. */
export { findProjectFile, PROJECT_FILE, type ProjectFile, parseProjectFile, SCHEMA_FILE } from './file.js';
export { combine, type FlagSettings, selectWorkloads, type WorkloadSettings } from './settings.js';
