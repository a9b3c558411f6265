module ocm-conductor.local/test-peers/kube/ocm-api

go 1.25.0

require open-cluster-management.io/api v1.3.0
