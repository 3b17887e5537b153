/** Public surface of the dev container domain: a project's devcontainer.json joined to a devbox session. */
export {
  type CliOptions,
  type CliRunOptions,
  type CliTarget,
  type CliUpOptions,
  type CliUpResult,
  type DevcontainerCli,
  devcontainerCli,
  installedCliPath,
} from './cli.js';
export {
  type DevcontainerConfig,
  findDevcontainerConfig,
  type LoadedDevcontainer,
  loadDevcontainer,
} from './config.js';
export { formatEnvFile, formatLabelFile, writePrivateFile } from './env-file.js';
export { type InitOptions, type InitResult, initDevcontainer, initPaths } from './init.js';
export { type JoinPlan, type JoinProblem, planJoin } from './join-plan.js';
export { parseJsonc, positionAt } from './jsonc.js';
export { type JoinSettings, joinedConfig } from './override.js';
export {
  type CreatedDevcontainerSession,
  type CreatedSidecarOnlySession,
  createDevcontainerSession,
  createSidecarOnlySession,
  type DevcontainerSessionOptions,
  type PreparedDevcontainer,
  prepareDevcontainer,
  type SidecarOnlyFiles,
  type SidecarOnlyOptions,
} from './session-containers.js';
export { type PodMount, volumeRoots } from './volumes.js';
export {
  placeFolder,
  placeWorkspace,
  type WorkspaceInput,
  type WorkspacePlacement,
  workspaceTarget,
} from './workspace.js';
