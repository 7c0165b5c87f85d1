use futures::future::join_all;

use crate::helpers::{count, spawn_app_with, TestConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_users_on_stock_five_get_exactly_five_201_and_five_410() {
    let app = spawn_app_with(TestConfig::active(5)).await;

    let requests = (0..10).map(|i| {
        let app = &app;
        async move {
            app.purchase(&format!("concurrent-{i}"))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = join_all(requests).await;

    assert_eq!(count(&statuses, 201), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 410), 5, "{statuses:?}");
    assert_eq!(app.sale_status().await["stockRemaining"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_requests_of_one_user_give_exactly_one_201() {
    let app = spawn_app_with(TestConfig::active(10)).await;

    let requests = (0..10).map(|_| {
        let app = &app;
        async move { app.purchase("same-user").await.status().as_u16() }
    });
    let statuses = join_all(requests).await;

    assert_eq!(count(&statuses, 201), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 409), 9, "{statuses:?}");
    assert_eq!(app.sale_status().await["stockRemaining"], 9);
}
