/*
 * devbox-pause: the process that holds a pod sandbox's namespaces open.
 *
 * It sleeps in pause() forever, reaps any child re-parented to it (it is
 * PID 1 of the sandbox), and exits 0 on SIGINT or SIGTERM. As PID 1 it gets
 * no default signal actions, hence the explicit handlers.
 *
 * Build: gcc -static -Os -s -o pause pause.c
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAUSE_VERSION "1.0"

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  int saved = errno;
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static int handle(int sig, void (*handler)(int), int flags) {
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  sigemptyset(&action.sa_mask);
  action.sa_handler = handler;
  action.sa_flags = flags;
  return sigaction(sig, &action, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
    puts("devbox-pause " PAUSE_VERSION);
    return 0;
  }
  if (getpid() != 1) fputs("devbox-pause: warning: not running as PID 1\n", stderr);
  if (handle(SIGINT, on_stop, 0) < 0 || handle(SIGTERM, on_stop, 0) < 0 ||
      handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) < 0) {
    perror("devbox-pause: sigaction");
    return 1;
  }
  for (;;) pause();
}
