/* Declarations-only stand-in for the PULP SDK's pmsis.h, used by tests/deploy to type-check the
 * MARLIN_PMSIS branches of the generated code with the host compiler (-fsyntax-only). */
#ifndef PMSIS_STUB_H
#define PMSIS_STUB_H
#include <stdint.h>

struct pi_device { void *data; };
struct pi_cluster_conf { int id; };
struct pi_cluster_task { void (*entry)(void *); void *arg; };

void pi_cluster_conf_init(struct pi_cluster_conf *conf);
void pi_open_from_conf(struct pi_device *device, void *conf);
int pi_cluster_open(struct pi_device *device);
struct pi_cluster_task *pi_cluster_task(struct pi_cluster_task *task, void (*entry)(void *),
                                        void *arg);
int pi_cluster_send_task_to_cl(struct pi_device *device, struct pi_cluster_task *task);
void pi_cluster_close(struct pi_device *device);
void pi_cl_team_fork(int nb_cores, void (*entry)(void *), void *arg);
uint32_t pi_core_id(void);
void pmsis_exit(int err);
int pmsis_kickoff(void *arg);
#endif
