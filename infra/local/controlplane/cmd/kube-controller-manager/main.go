// The local cloud's kube-controller-manager: Kubernetes' own command, with the Job
// controller's pod-failure back-off shortened as Kubernetes' integration tests shorten it,
// so that a retried task starts in a second instead of ten.
package main

import (
	"os"
	"time"
	_ "time/tzdata" // CronJobs' time zones, as the release's own main imports them

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
	"k8s.io/kubernetes/pkg/controller/job"
)

// PodFailureBackOff is the first delay before a failed pod of a Job is replaced: 10 s in
// the release, doubling up to MaxJobPodFailureBackOff (10 minutes).
const PodFailureBackOff = time.Second

func main() {
	job.DefaultJobPodFailureBackOff = PodFailureBackOff
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
