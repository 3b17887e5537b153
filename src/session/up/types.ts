import type { V1Container, V1Service } from '@kubernetes/client-node';
import type { PreparedDevcontainer, SidecarOnlyFiles, WorkspacePlacement } from '../../devcontainer/index.js';
import type {
  BindMount,
  DockerClient,
  EnsuredImage,
  PortBinding,
  ResolvedBindMounts,
  SessionSummary,
} from '../../docker/index.js';
import type {
  InterceptPlan,
  KubeClient,
  MintedToken,
  RecordedRoute,
  SessionHolder,
  SessionRecord,
  Workload,
} from '../../kube/index.js';
import type { KubeTarget } from '../../kube/kubeconfig.js';
import type { AgentContainerEnv } from '../../tunnel/agent-contract.js';
import type { SessionRoute } from '../../tunnel/route.js';
import type { Progress } from '../../util/progress.js';
import type { RouteFlags } from '../route-flags.js';
import type { SessionSidecarToken } from '../sidecar-token.js';

export interface UpOptions {
  target: KubeTarget;
  workload: string;
  container?: string;
  /** Local image instead of the workload's. */
  image?: string;
  /** Build the image from this directory (`--build`). */
  build?: { dir: string; dockerfile?: string };
  env: string[];
  volumes: string[];
  publish: string[];
  workdir?: string;
  /** Replaces the container's command (after `--`). */
  command: string[];
  /** Image of the agent container in the pod (must be pullable by the cluster). */
  agentImage: string;
  rolloutTimeoutMs: number;
  readyTimeoutMs: number;
  /** Run the service container with a TTY (foreground on a terminal). */
  tty: boolean;
  /** The project's devcontainer.json (folder or file) runs as the service container. */
  devcontainer?: { path: string; onOutput?: (line: string) => void };
  /** No service container: an editor creates the dev container from these files (see `devbox devcontainer init`). */
  sidecarOnly?: SidecarOnlyFiles;
  /** The session's name on the workload (default: derived from the user's login). */
  name?: string;
  /** Which requests the session takes (default: all of them, a global session). */
  filters?: RouteFlags;
  progress: Progress;
  signal: AbortSignal;
}

export interface InterceptedPort {
  service: string;
  port: number;
  protocol: string;
  appPort: number;
}

export interface UpResult {
  session: string;
  /** Its name on the workload (`down --name`). */
  name: string;
  /** Which requests it takes, as the workload records it (no key). */
  route: RecordedRoute;
  /** The filter in words. */
  filter: string;
  /** A personal session's key: only the developer's own terminal gets it. */
  personalKey?: string;
  /** A request a pod of the cluster can send to reach the session (filtered sessions). */
  curl?: string;
  /** The pod's container the session stands for (unknown when a running sidecar was reused). */
  container?: string;
  workload: string;
  namespace: string;
  context: string;
  containers: { sidecar: string; service: string; serviceId: string };
  intercepted: InterceptedPort[];
  /** True when the agent already in the pods was reused (another session's, or one left in place): no rollout. */
  resumed: boolean;
  warnings: string[];
  /** With `devcontainer`: what the Dev Containers CLI reported. */
  devcontainer?: { configFile: string; remoteUser: string; remoteWorkspaceFolder: string };
  /** With `sidecarOnly`: where the env and labels were written. */
  files?: SidecarOnlyFiles;
}

/** What every stage works with: the options, both engines, and a step that stops on Ctrl-C. */
export interface UpContext {
  options: UpOptions;
  client: KubeClient;
  docker: DockerClient;
  progress: Progress;
  signal: AbortSignal;
  /** A progress step that first stops if Ctrl-C came in between. */
  step<T>(title: string, run: () => Promise<T>): Promise<T>;
}

/** The flags, checked before anything is contacted. */
export interface UpFlags {
  env: Record<string, string>;
  publish: PortBinding[];
  volumes: BindMount[];
  devcontainer: PreparedDevcontainer | undefined;
  /** With a personal route, its fresh key. */
  route: SessionRoute;
  name: string;
}

/** The workload as found, who holds it, and the local side: everything `up` checks before it changes anything. */
export interface Validated {
  namespace: string;
  workload: Workload;
  /** `deployment/api`. */
  label: string;
  name: string;
  services: V1Service[];
  app: V1Container;
  /** Who holds the workload's session as read (undefined: nobody). */
  holder: SessionHolder | undefined;
  /** Every session of the workload as read, oldest first. */
  sessions: SessionRecord[];
  /** Sessions this one replaces: its own name, left by a crash on this machine. */
  replaces: string[];
  /** Sessions of this workload on this Docker engine, none of them running (removed once the workload is claimed). */
  staleLocal: SessionSummary[];
  /** The `-v` bind mounts as the Docker engine sees them. */
  mounts: ResolvedBindMounts;
  /** A short-lived token of the sidecar's account, minted to check its permissions (the sidecar gets its own, bound to the session). */
  sidecarToken: MintedToken;
}

/** What the cluster side of the session will be. */
export type ClusterPlan =
  /** Add the agent, point the Services at it. */
  | { mode: 'fresh'; intercept: InterceptPlan; agentObjects: { configMap: string; secret: string } }
  /** Join the agent already in the pods (other sessions', or one left in place): no rollout. */
  | { mode: 'join'; agent: AgentContainerEnv; token: string };

/** Everything decided before the first change: the session, its images, the cluster plan. */
export interface UpPlan {
  target: Validated;
  flags: UpFlags;
  session: SessionRecord;
  cluster: ClusterPlan;
  images: {
    /** Image of the service container ('' with a dev container or sidecar only). */
    service: string;
    runtime: EnsuredImage;
  };
  workspace: WorkspacePlacement | undefined;
  bundles: { sidecar: Buffer; agent: string };
  warnings: string[];
}

/** The cluster side, once in place. */
export interface ClusterSession {
  token: string;
  tunnelPort: number;
  intercepted: InterceptedPort[];
}

/** The cluster side with the sidecar's token for this session (bound to it, see sidecar-token.ts). */
export interface ClusterSessionWithToken extends ClusterSession {
  sidecarToken: SessionSidecarToken;
}
