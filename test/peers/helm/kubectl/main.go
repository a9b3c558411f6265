// Command kubectl is the stock kubectl command of k8s.io/kubectl (the version pinned in ../go.mod,
// the one Helm itself depends on), built so that test/deploy can run deploy/conductor/install.sh
// against the harness kube-apiserver. Nothing here changes kubectl's behaviour.
package main

import (
	"os"

	_ "k8s.io/client-go/plugin/pkg/client/auth" // client auth plugins, as the released binary has
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	kubectl "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	// Verbosity is applied before the command is built, so that start-up logging honours -v.
	_, _ = logs.GlogSetter(kubectl.GetLogVerbosity(os.Args))
	if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
	}
}
