// Command etcd is the etcd server, built through a wrapper module because the upstream
// main package lives in a module that cannot be `go install`ed with its replace directives.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
