//! The built-in kinds the simulated cluster serves, by scope.

/// Built-in kinds without a namespace.
pub(super) const CLUSTER_SCOPED: [&str; 11] = [
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Built-in kinds that live in a namespace.
pub(super) const NAMESPACED: [&str; 21] = [
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceAccount",
    "Pod",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Role",
    "RoleBinding",
    "Ingress",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Endpoints",
];
